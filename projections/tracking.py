"""The projector's position in Redis, behind the library's TrackingRecorder interface."""

from __future__ import annotations

from collections.abc import Sequence

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from redis.exceptions import ResponseError

from projections.read_model import Keys
from projections.redis_client import RedisClient
from projections.scripts import insert_tracking


class TrackingRolledBackError(Exception):
    """Redis holds a lower position than this writer recorded: it lost data since."""

    def __init__(self, found: int, recorded: int) -> None:
        super().__init__(f"tracking at {found}, below the {recorded} recorded before")
        self.found = found
        self.recorded = recorded


class RedisTrackingRecorder(TrackingRecorder):
    """Positions per application name in one generation's tracking hash; they only grow."""

    def __init__(self, client: RedisClient, keys: Keys, generation: int) -> None:
        self.client = client
        self.keys = keys
        self.generation = generation
        self.key = keys.tracking(generation)

    def insert_tracking(self, tracking: Tracking) -> None:
        self.advance(tracking.application_name, tracking.notification_id, recorded=0)

    def advance(
        self,
        application_name: str,
        position: int,
        *,
        recorded: int,
        floors: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record `position`, checking that the hash still holds `recorded` (ours, last);
        `floors` are partitions' checkpoints the same page confirmed, recorded with it.

        Raises IntegrityError when the hash is at `position` or beyond already (another
        writer got there first), TrackingRolledBackError when it holds less than `recorded`.
        """
        args = [application_name, str(position), str(recorded)]
        for field, checkpoint in floors:
            args += (field, checkpoint)
        try:
            insert_tracking(self.client, [self.key], args)
        except ResponseError as error:
            message = str(error)
            if message.startswith("TRACKING"):
                raise IntegrityError(message) from None
            if message.startswith("ROLLBACK"):
                raise TrackingRolledBackError(int(message.split()[1]), recorded) from None
            raise

    def max_tracking_id(self, application_name: str) -> int | None:
        value = self.client.hget(self.key, application_name)
        return None if value is None else int(value)
