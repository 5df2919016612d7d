"""How far the projector has brought the read model, noted outside Redis, in the event store.

A running projector knows what it gave Redis, and finds Redis holding less by comparison.
A projector that starts afresh knows nothing, so Redis restored from an older copy (or
come back with its append-only file cut short) while it was down would pass for the
truth until it caught up, a revoked key with it. The projector therefore notes the
position it has recorded in Redis, at most once a second, in a small table of the event
store's own database (PostgreSQL or SQLite), and takes it as a floor when it starts:
Redis below it has lost data. The note lags Redis by up to a second, so a loss of just
that last second on a restart goes unnoticed until the replay covers it.
"""

from __future__ import annotations

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

TABLE = "read_model_watermarks"
CREATE_LOCK = 0x43_52_4D_57  # advisory lock key taken while creating the table ("CRMW")


class Watermark:
    """One read model's floor (by name: the Redis key prefix), which only grows."""

    def __init__(self, recorder: ApplicationRecorder, name: str) -> None:
        self._recorder = recorder
        self._name = name
        self._created = False
        self._noted = 0  # the highest position this object read or wrote

    def read(self) -> int:
        """The position noted last (0 if none, or the store keeps no such table)."""
        position = self._select()
        self._noted = max(self._noted, position)
        return position

    def raise_to(self, position: int) -> None:
        """write(), unless this object has seen the floor at `position` or above already."""
        if position > self._noted:
            self.write(position)
            self._noted = position

    def _select(self) -> int:
        recorder = self._recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            self._create()
            query = SQL("SELECT position FROM {}.{} WHERE name = %s").format(
                Identifier(recorder.datastore.schema), Identifier(TABLE)
            )
            with recorder.datastore.get_connection() as conn:
                row = conn.execute(query, (self._name,)).fetchone()
            return 0 if row is None else int(row["position"])
        if isinstance(recorder, SQLiteApplicationRecorder):
            self._create()
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(f"SELECT position FROM {TABLE} WHERE name = ?", (self._name,))  # noqa: S608
                sqlite_row = cursor.fetchone()
            return 0 if sqlite_row is None else int(sqlite_row[0])
        return 0

    def write(self, position: int) -> None:
        """Raise the floor to `position` (a lower one leaves it as it is)."""
        recorder = self._recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            self._create()
            upsert = SQL(
                "INSERT INTO {0}.{1} AS w (name, position) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE "
                "SET position = GREATEST(w.position, EXCLUDED.position), updated_at = now()"
            ).format(Identifier(recorder.datastore.schema), Identifier(TABLE))
            with recorder.datastore.get_connection() as conn:
                conn.execute(upsert, (self._name, position))
        elif isinstance(recorder, SQLiteApplicationRecorder):
            self._create()
            with recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(
                    f"INSERT INTO {TABLE} (name, position, updated_at) "  # noqa: S608
                    "VALUES (?, ?, datetime('now')) ON CONFLICT (name) DO UPDATE SET "
                    "position = MAX(position, excluded.position), updated_at = datetime('now')",
                    (self._name, position),
                )

    def _create(self) -> None:
        if self._created:
            return
        recorder = self._recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            statement = SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (name text PRIMARY KEY, "
                "position bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(Identifier(recorder.datastore.schema), Identifier(TABLE))
            # Projectors starting together would race to create it (and the loser fail):
            # the lock makes them take turns, and the later one finds it.
            with recorder.datastore.get_connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
                conn.execute(statement)
        elif isinstance(recorder, SQLiteApplicationRecorder):
            with recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, "
                    "position INTEGER NOT NULL, updated_at TEXT NOT NULL)"
                )
        self._created = True
