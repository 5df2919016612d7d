"""Store details the library does not cover: a position lookup, a fail-fast recorder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, InterfaceError, OperationalError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier


def position_of(recorder: ApplicationRecorder, originator_id: UUID, version: int) -> int | None:
    """The notification id (event store position) of one stored event, if it exists."""
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT notification_id FROM {}.{} WHERE originator_id = %s AND originator_version = %s"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(query, (originator_id, version), prepare=True)
            row = curs.fetchone()
        return None if row is None else int(row["notification_id"])
    if isinstance(recorder, SQLiteApplicationRecorder):
        statement = (
            f"SELECT rowid FROM {recorder.events_table_name} "  # noqa: S608 (table name is ours)
            "WHERE originator_id = ? AND originator_version = ?"
        )
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(statement, (originator_id.hex, version))
            sqlite_row = c.fetchone()
        return None if sqlite_row is None else int(sqlite_row[0])
    raise TypeError(f"unsupported recorder {type(recorder).__name__}")


_STORE_ERRORS = (InterfaceError, OperationalError)


def _fail_fast(method: Callable[..., Any]) -> Callable[..., Any]:
    """The library's method without its 10-attempt retry, retried 3 times instead."""
    undecorated = method.__wrapped__  # type: ignore[attr-defined]
    wrapped: Callable[..., Any] = retry(_STORE_ERRORS, max_attempts=3, wait=0.2)(undecorated)
    return wrapped


class FailFastPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder, giving up sooner when the server is unreachable.

    The library retries each call 10 times, each waiting up to the connect timeout for a
    pooled connection: a minute before an unreachable store is reported. Three attempts
    still ride over a stale pooled connection after a server restart.
    """

    insert_events = _fail_fast(PostgresApplicationRecorder.insert_events)
    select_events = _fail_fast(PostgresApplicationRecorder.select_events)
    select_notifications = _fail_fast(PostgresApplicationRecorder.select_notifications)
    max_notification_id = _fail_fast(PostgresApplicationRecorder.max_notification_id)
