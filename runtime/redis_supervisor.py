"""Brings an embedded Redis that died back up, while `serve` runs."""

from __future__ import annotations

import logging
import threading

from runtime.redis_store import EmbeddedRedis, RedisStartError

logger = logging.getLogger("runtime.redis_store")  # where its lines always logged

MAX_RESTART_PAUSE_SECONDS = 10.0


class RedisSupervisor:
    """Restarts an embedded Redis that died, with a growing pause, until told to stop.

    Without it, `serve` answered 503 from the moment its Redis died until someone
    restarted serve. The server comes back from its append-only file on the same port;
    what the file had not kept yet, the projector finds missing and repairs.
    """

    def __init__(self, server: EmbeddedRedis, *, check_every: float = 0.5) -> None:
        self._server = server
        self._check_every = check_every
        self.restarts = 0

    def run(self, stop: threading.Event) -> None:
        pause = 0.5
        while not stop.wait(self._check_every):
            code = self._server.exited()
            if code is None:
                pause = 0.5
                continue
            logger.error("embedded Redis exited (code %s); restarting it in %.1f s", code, pause)
            if stop.wait(pause):
                return
            try:
                self._server.restart()
            except RedisStartError as error:
                logger.error("embedded Redis did not restart: %s", error)
                pause = min(pause * 2, MAX_RESTART_PAUSE_SECONDS)
                continue
            self.restarts += 1
            logger.warning("embedded Redis restarted from its append-only file")
            pause = min(pause * 2, MAX_RESTART_PAUSE_SECONDS)
