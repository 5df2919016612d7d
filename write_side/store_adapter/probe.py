"""Probe: is the PostgreSQL server accepting connections? One attempt, shared by all who ask."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import psycopg
from eventsourcing.persistence import OperationalError


class Probe:
    """One connection attempt at a time, shared by everyone who asks while it runs.

    It runs in its own thread so that each caller waits only `wait` seconds for it: a
    frozen server lets the attempt hang until its connect timeout.
    """

    def __init__(self, connect: Callable[[], None], wait: float) -> None:
        self._connect = connect
        self._wait = wait
        self._lock = threading.Lock()
        self._attempt: Future[None] | None = None

    def check(self) -> None:
        """Return if the server accepted a connection; else raise OperationalError."""
        with self._lock:
            attempt = self._attempt
            if attempt is None:
                attempt = self._attempt = Future()
                threading.Thread(
                    target=self._run, args=(attempt,), name="store-probe", daemon=True
                ).start()
        try:
            attempt.result(timeout=self._wait)
        except TimeoutError:
            raise OperationalError(
                f"event store unavailable: no answer within {self._wait} s"
            ) from None
        except psycopg.Error as error:
            raise OperationalError(f"event store unavailable: {error}") from error

    def _run(self, attempt: Future[None]) -> None:
        try:
            self._connect()
        except BaseException as error:
            outcome: BaseException | None = error
        else:
            outcome = None
        # Cleared first: whoever asks from now on gets an attempt that starts later.
        with self._lock:
            self._attempt = None
        if outcome is None:
            attempt.set_result(None)
        else:
            attempt.set_exception(outcome)
