"""Wakes the live projector on the NOTIFY the library's PostgreSQL recorder sends on insert."""

from __future__ import annotations

import logging
import threading

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

logger = logging.getLogger(__name__)


class PostgresListener:
    """Sets an event on every NOTIFY of the event store's channel, in a thread of its own."""

    def __init__(self, recorder: PostgresApplicationRecorder, wake: threading.Event) -> None:
        self._recorder = recorder
        self._wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="projector-listen", daemon=True)

    @classmethod
    def start_for(
        cls, recorder: ApplicationRecorder, wake: threading.Event
    ) -> PostgresListener | None:
        """A started listener, or None for a store that sends no notifications (SQLite)."""
        if not isinstance(recorder, PostgresApplicationRecorder):
            return None
        listener = cls(recorder, wake)
        listener._thread.start()
        return listener

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _listen(self) -> None:
        while not self._stopped.is_set():
            try:
                with self._recorder.datastore.get_connection() as conn:
                    conn.execute(SQL("LISTEN {0}").format(Identifier(self._recorder.channel_name)))
                    try:
                        while not self._stopped.is_set():
                            for _ in conn.notifies(timeout=0.2, stop_after=1):
                                self._wake.set()
                    finally:
                        conn.execute("UNLISTEN *")
            except Exception as error:  # the poll bound covers us meanwhile
                logger.debug("LISTEN connection lost (%s); retrying", error)
                self._stopped.wait(1.0)
