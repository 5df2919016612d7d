"""The projector's heartbeat: the {prefix}:projector hash that tells readers it runs,
and one hash per projector process that tells its own health check."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime

from eventsourcing.persistence import ApplicationRecorder
from redis.typing import EncodableT, FieldT

from projections.read_model import Keys
from projections.redis_client import RedisClient

# Renewed this often while the projector runs, gone this long after it stops.
BEAT_SECONDS = 1.0
BEAT_EXPIRES_MS = 10_000


class Heartbeat:
    """Who runs the projector, where it is and the store's head (so readers see the lag)."""

    def __init__(self, recorder: ApplicationRecorder, client: RedisClient, keys: Keys) -> None:
        self._recorder = recorder
        self._client = client
        self._key = keys.projector
        self._own_key = keys.projector_beat(socket.gethostname(), os.getpid())
        self._sent_at = float("-inf")

    def send(self, position: int, *, every: float = BEAT_SECONDS) -> bool:
        """Renew the hash unless it was renewed less than `every` seconds ago; True if sent."""
        now = time.monotonic()
        if now - self._sent_at < every:
            return False
        self._sent_at = now
        head = self._recorder.max_notification_id() or 0
        beat: dict[FieldT, EncodableT] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "position": position,
            "head": head,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        pipe = self._client.pipeline(transaction=False)
        # The shared hash is what readers show (the last projector to beat); each
        # projector's own is what its container's health check looks for, as with two
        # projectors the shared one names either.
        for key in (self._key, self._own_key):
            pipe.hset(key, mapping=beat)
            pipe.pexpire(key, BEAT_EXPIRES_MS)
        pipe.execute()
        return True
