"""The projector's position in Redis, behind the library's TrackingRecorder interface."""

from __future__ import annotations

import redis
from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from redis.exceptions import ResponseError

from projections.read_model import Keys
from projections.scripts import insert_tracking


class RedisTrackingRecorder(TrackingRecorder):
    """Positions per application name in one generation's tracking hash; they only grow."""

    def __init__(self, client: redis.Redis, keys: Keys, generation: int) -> None:
        self.client = client
        self.keys = keys
        self.generation = generation
        self.key = keys.tracking(generation)

    def insert_tracking(self, tracking: Tracking) -> None:
        args = [tracking.application_name, str(tracking.notification_id)]
        try:
            insert_tracking(self.client, [self.key], args)
        except ResponseError as error:
            if str(error).startswith("TRACKING"):
                raise IntegrityError(str(error)) from None
            raise

    def max_tracking_id(self, application_name: str) -> int | None:
        value = self.client.hget(self.key, application_name)
        return None if value is None else int(value)
