"""Store details the library does not cover: position and topic lookups, a fail-fast recorder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, InterfaceError, OperationalError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL, Identifier


def position_of(recorder: ApplicationRecorder, originator_id: UUID, version: int) -> int | None:
    """The notification id (event store position) of one stored event, if it exists.

    PostgreSQL queries here run as single autocommit statements: no BEGIN/ROLLBACK trips.
    """
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT notification_id FROM {}.{} WHERE originator_id = %s AND originator_version = %s"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
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


def topics_after(
    recorder: ApplicationRecorder, streams: Sequence[tuple[UUID, int]]
) -> list[tuple[UUID, int, str]]:
    """(stream, version, topic) of every event after a known version, for many streams.

    One query on PostgreSQL; ordered by stream, then version. No event state is read.
    """
    if not streams:
        return []
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic FROM {}.{} AS e "
            "JOIN unnest(%s::uuid[], %s::bigint[]) AS known(id, version) "
            "ON e.originator_id = known.id AND e.originator_version > known.version "
            "ORDER BY e.originator_id, e.originator_version"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        ids = [stream for stream, _ in streams]
        versions = [version for _, version in streams]
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(query, (ids, versions), prepare=True)
            return [
                (row["originator_id"], int(row["originator_version"]), row["topic"])
                for row in curs.fetchall()
            ]
    if isinstance(recorder, SQLiteApplicationRecorder):
        statement = (
            f"SELECT originator_version, topic FROM {recorder.events_table_name} "  # noqa: S608
            "WHERE originator_id = ? AND originator_version > ? ORDER BY originator_version"
        )
        found: list[tuple[UUID, int, str]] = []
        with recorder.datastore.transaction(commit=False) as c:
            for stream, version in sorted(streams):
                c.execute(statement, (stream.hex, version))
                found += [(stream, int(row[0]), str(row[1])) for row in c.fetchall()]
        return found
    raise TypeError(f"unsupported recorder {type(recorder).__name__}")
