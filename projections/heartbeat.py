"""The projector's heartbeat: the {prefix}:projector hash that tells readers it runs."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime

from eventsourcing.persistence import ApplicationRecorder

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
        self._sent_at = float("-inf")

    def send(self, position: int, *, every: float = BEAT_SECONDS) -> bool:
        """Renew the hash unless it was renewed less than `every` seconds ago; True if sent."""
        now = time.monotonic()
        if now - self._sent_at < every:
            return False
        self._sent_at = now
        head = self._recorder.max_notification_id() or 0
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(
            self._key,
            mapping={
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "position": position,
                "head": head,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            },
        )
        pipe.pexpire(self._key, BEAT_EXPIRES_MS)
        pipe.execute()
        return True
