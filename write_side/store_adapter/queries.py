"""SQL against the library's events table: positions, topics, a customer's events.

The library reads events by stream or by position; these lookups it has no query for.
PostgreSQL queries run as single autocommit statements (no BEGIN/ROLLBACK trips) and
through the fail-fast recorder's guard when there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from write_side.store_adapter.recorder import FailFastPostgresApplicationRecorder

T = TypeVar("T")


def _on_postgres(recorder: PostgresApplicationRecorder, query: Callable[[], T]) -> T:
    if isinstance(recorder, FailFastPostgresApplicationRecorder):
        return recorder.guard.call(query)
    return query()


def position_of(recorder: ApplicationRecorder, originator_id: UUID, version: int) -> int | None:
    """The notification id (event store position) of one stored event, if it exists."""
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT notification_id FROM {}.{} WHERE originator_id = %s AND originator_version = %s"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))

        def select() -> int | None:
            with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(query, (originator_id, version), prepare=True)
                row = curs.fetchone()
            return None if row is None else int(row["notification_id"])

        return _on_postgres(recorder, select)
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

        def select() -> list[tuple[UUID, int, str]]:
            with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(query, (ids, versions), prepare=True)
                return [
                    (row["originator_id"], int(row["originator_version"]), row["topic"])
                    for row in curs.fetchall()
                ]

        return _on_postgres(recorder, select)
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


def customer_id_needles(customer_id: int) -> list[bytes]:
    """The bytes a stored event's state holds when its `customer_id` field is this one."""
    return [f'"customer_id":{customer_id}{end}'.encode() for end in (",", "}")]


def notifications_of_customer(
    recorder: ApplicationRecorder, customer_id: int
) -> list[Notification]:
    """Every stored event whose state names `customer_id`, in position order.

    Customer and order events all carry the customer's id; the store finds them by their
    bytes (JSON as the library's transcoder writes it) without the application decoding
    the whole log. The bytes match is a superset only in theory (a text field holding the
    same characters): callers decode each event and keep those of this customer.
    """
    needles = customer_id_needles(customer_id)
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {}.{} WHERE position(%s in state) > 0 OR position(%s in state) > 0 "
            "ORDER BY notification_id"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))

        def select() -> list[Notification]:
            with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
                curs.execute(query, needles)
                return [
                    Notification(
                        id=row["notification_id"],
                        originator_id=row["originator_id"],
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=bytes(row["state"]),
                    )
                    for row in curs.fetchall()
                ]

        return _on_postgres(recorder, select)
    if isinstance(recorder, SQLiteApplicationRecorder):
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "  # noqa: S608
            f"FROM {recorder.events_table_name} WHERE instr(state, ?) > 0 OR instr(state, ?) > 0 "
            "ORDER BY rowid"
        )
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(statement, needles)
            rows = c.fetchall()
        return [
            Notification(
                id=int(row[0]),
                originator_id=UUID(row[1]),
                originator_version=int(row[2]),
                topic=row[3],
                state=bytes(row[4]),
            )
            for row in rows
        ]
    raise TypeError(f"unsupported recorder {type(recorder).__name__}")
