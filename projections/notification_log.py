"""Reading the notification log in pages, as lean rows, one page ahead of the projector.

The projector needs only (position, topic, state) of each stored event. On PostgreSQL it
reads exactly those columns as plain tuples (the library's select_notifications reads
every column into dict rows, parses the originator UUID and builds a dataclass per row,
which costs more than projecting the event). Other stores go through the library's
select_notifications. A reader thread fetches the next page while the projector applies
the current one, so the store's and Redis's waits overlap.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from eventsourcing.persistence import ApplicationRecorder

Row = tuple[int, str, bytes]  # (position, topic, state)
ReadPage = Callable[[int, int], list[Row]]  # (after position, limit) -> rows
T = TypeVar("T")


def page_reader(recorder: ApplicationRecorder) -> ReadPage:
    """A function reading up to `limit` rows after a position, in position order."""
    lean = _postgres_reader(recorder)
    if lean is not None:
        return lean

    def read(after: int, limit: int) -> list[Row]:
        return [(n.id, n.topic, n.state) for n in recorder.select_notifications(after + 1, limit)]

    return read


def _postgres_reader(recorder: ApplicationRecorder) -> ReadPage | None:
    try:
        from eventsourcing.postgres import PostgresApplicationRecorder
        from psycopg.rows import tuple_row
        from psycopg.sql import SQL, Identifier
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    if not isinstance(recorder, PostgresApplicationRecorder):
        return None
    statement = SQL(
        "SELECT notification_id, topic, state FROM {0}.{1} "
        "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
    ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
    datastore: Any = recorder.datastore

    def read(after: int, limit: int) -> list[Row]:
        with datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(statement, (after, limit), prepare=True, binary=True)
            rows: list[Row] = curs.fetchall()
            return rows

    return read


class Prefetch(Generic[T]):
    """Pages after a position, read (and prepared) ahead by a thread; close() stops it."""

    _DONE = object()

    def __init__(
        self,
        read: ReadPage,
        after: int,
        page_size: int,
        prepare: Callable[[list[Row]], T],
        ahead: int = 2,
    ) -> None:
        self._read = read
        self._prepare = prepare
        self._after = after
        self._page_size = page_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="projector-read", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._closed.set()  # the reader notices when its query returns, or at once:
        # pages nobody will take are dropped, so a reader waiting for room gets it now
        # (else it saw the flag only at its next 50 ms look, after every failed page).
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()

    def _fill(self) -> None:
        after = self._after
        try:
            while not self._closed.is_set():
                page = self._read(after, self._page_size)
                if page:
                    self._put(self._prepare(page))
                    after = page[-1][0]
                if len(page) < self._page_size:
                    break
        except BaseException as error:  # handed to the consumer, raised there
            self._put(error)
        self._put(self._DONE)

    def _put(self, item: Any) -> None:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
