"""The library's own TrackingRecorder contract, run against the Redis tracking recorder."""

from __future__ import annotations

import uuid

import redis
from eventsourcing.tests import persistence as library_tests

from projections.read_model import Keys
from projections.tracking import RedisTrackingRecorder
from tests.support.servers import redis_url


class TestRedisTrackingRecorder(library_tests.TrackingRecorderTestCase):
    def setUp(self) -> None:
        self.client = redis.Redis.from_url(redis_url())
        self.keys = Keys(f"t{uuid.uuid4().hex[:12]}")

    def tearDown(self) -> None:
        self.client.delete(self.keys.tracking(1))
        self.client.close()

    def create_recorder(self) -> RedisTrackingRecorder:
        return RedisTrackingRecorder(self.client, self.keys, generation=1)
