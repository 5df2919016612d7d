"""Workers sharing the projection: slices leased in PostgreSQL, taken over when one dies.

Each `customers project` process on a PostgreSQL store is a member of its read model's
group. A member is alive while it holds its session advisory lock (gone the moment its
process dies: PostgreSQL closes the connection) and renews its lease row (gone
LEASE_SECONDS after it hangs, e.g. SIGSTOP). Every member computes the same fair share
from the sorted list of live members — slice S goes to member S mod N — and:

- claims a slice of its share that nobody holds, or whose holder is not alive, with a
  fencing token one above the slice's last (projections/worker_share.py writes it to
  Redis before anything is applied, so the old holder, if it wakes, changes nothing);
- gives back a slice now in another's share, once its projector has stopped applying it
  (between pages), so the other can claim it: a member joining or leaving rebalances.

The rows live in two tables of the event store's database, created on first use.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresApplicationRecorder

from projections.read_model import SLICES

logger = logging.getLogger(__name__)

LEASE_SECONDS = 2.0  # a hung member's slices are taken over this long after its last renewal
TICK_SECONDS = 0.25  # how often a member renews its lease and looks at the others
LOCK_CLASS = 0x43_50_52_4A  # advisory lock namespace of members' liveness locks ("CPRJ")
FORGET_AFTER_SECONDS = 60  # rows of members gone this long are deleted

# A member that hangs inside a transaction (SIGSTOP, a frozen VM) must not hold the slice
# rows' locks for long: PostgreSQL ends its session after a second idle in a transaction,
# which also frees its liveness lock, and others wait for a row lock a second at most.
# Keepalives find a dead network path within seconds instead of hours.
_SESSION = (
    "SET lock_timeout = '1s'; SET statement_timeout = '2s'; "
    "SET idle_in_transaction_session_timeout = '1s'"
)
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 1,
    "keepalives_interval": 1,
    "keepalives_count": 3,
    "tcp_user_timeout": 3000,
}
# What psycopg.connect takes besides libpq's connection options.
_NOT_LIBPQ = ("autocommit", "prepare_threshold", "row_factory", "cursor_factory", "context")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_workers (
  read_model text NOT NULL,
  worker text NOT NULL,
  lock_key integer NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (read_model, worker)
);
CREATE TABLE IF NOT EXISTS projection_slices (
  read_model text NOT NULL,
  slice integer NOT NULL,
  owner text,
  token bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (read_model, slice)
)
"""

_ALIVE = """
SELECT w.worker FROM projection_workers w
WHERE w.read_model = %(group)s AND w.expires_at > clock_timestamp()
  AND EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = %(lock_class)s::oid AND l.objid = w.lock_key::oid
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
ORDER BY w.worker
"""


class WorkerGroupError(Exception):
    """The group cannot be joined (the event store is not PostgreSQL, or unreachable)."""


class WorkerGroup:
    """This process's membership: a thread renewing it and keeping the slices it holds."""

    def __init__(
        self,
        connection: dict[str, Any],
        group: str,
        *,
        on_change: Callable[[], None] = lambda: None,
        name: str | None = None,
    ) -> None:
        self._connection = connection  # psycopg.connect's keyword arguments
        self.group = group
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.on_change = on_change  # called from the group's thread
        self._lock = threading.Lock()
        self._granted: dict[int, int] = {}  # slice -> token, held in PostgreSQL
        self._leaving: set[int] = set()  # held, but now another member's share
        self._released: set[int] = set()  # stopped applying: give back at the next tick
        self._outdated: dict[int, int] = {}  # slice -> a newer token Redis holds
        self._version = 0
        self.members: list[str] = []
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._lock_key = 0
        self._thread = threading.Thread(target=self._run, name="worker-group", daemon=True)

    @classmethod
    def for_recorder(cls, recorder: object, group: str) -> WorkerGroup:
        """A member on the event store's own database, with its connection options
        (TLS included), its tables beside the event store's."""
        if not isinstance(recorder, PostgresApplicationRecorder):
            raise WorkerGroupError("workers share the projection through PostgreSQL")
        datastore = recorder.datastore
        pool = datastore.pool
        assert isinstance(pool.kwargs, dict)
        options = {k: v for k, v in pool.kwargs.items() if k not in _NOT_LIBPQ and v is not None}
        if pool.get_password_func is not None:
            options["password"] = pool.get_password_func()
        if datastore.schema and datastore.schema != "public":
            search_path = f"-c search_path={datastore.schema}"
            options["options"] = f"{options.get('options', '')} {search_path}".strip()
        return cls({**options, **_KEEPALIVES}, group)

    # The Share protocol (projections/worker_share.py)

    @property
    def version(self) -> int:
        return self._version

    def offered(self) -> dict[int, int]:
        with self._lock:
            return {s: t for s, t in self._granted.items() if s not in self._leaving}

    def released(self, slices: frozenset[int]) -> None:
        with self._lock:
            self._released |= slices

    def outdated(self, slice_number: int, held: int) -> None:
        with self._lock:
            self._outdated[slice_number] = max(held, self._outdated.get(slice_number, 0))

    # Membership

    def start(self) -> None:
        """Join (the first look is taken before this returns) and keep renewing."""
        try:
            self._connect()
            self._tick()
        except psycopg.Error as error:
            self._drop_connection()
            reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise WorkerGroupError(f"cannot join the projection's workers: {reason}") from None
        self._thread.start()

    def stop(self) -> None:
        """Leave: give every slice back at once, so the others take over without waiting."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self._drop_connection()
            return
        try:
            with conn.transaction():
                conn.execute(
                    "UPDATE projection_slices SET owner = NULL "
                    "WHERE read_model = %s AND owner = %s",
                    (self.group, self.name),
                )
                conn.execute(
                    "DELETE FROM projection_workers WHERE read_model = %s AND worker = %s",
                    (self.group, self.name),
                )
        except psycopg.Error as error:
            logger.warning("could not leave the workers' group cleanly: %s", error)
        finally:
            conn.close()
            self._conn = None

    def _run(self) -> None:
        problem = ""
        while not self._stop.wait(TICK_SECONDS):
            try:
                if self._conn is None or self._conn.closed:
                    self._connect()
                self._tick()
                problem = ""
            except psycopg.Error as error:
                if str(error) != problem:
                    logger.warning("workers' group: %s; retrying", error)
                    problem = str(error)
                if self._conn is not None and (self._conn.closed or self._conn.broken):
                    self._drop_connection()  # else (a lock timeout): the same session again

    def _connect(self) -> None:
        options = {"connect_timeout": 5, **self._connection}
        conn = psycopg.connect(**options, autocommit=True)
        conn.execute(_SESSION)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
            for statement in _SCHEMA.split(";"):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO projection_slices (read_model, slice) "
                "SELECT %s, s FROM generate_series(0, %s) s ON CONFLICT DO NOTHING",
                (self.group, SLICES - 1),
            )
        while True:
            key = secrets.randbelow(2**31 - 2) + 1
            row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, key)).fetchone()
            if row and row[0]:
                break
        self._conn, self._lock_key = conn, key

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _tick(self) -> None:
        conn = self._conn
        assert conn is not None
        with self._lock:
            released = set(self._released)
            outdated = dict(self._outdated)
        with conn.transaction():
            conn.execute(
                "DELETE FROM projection_workers WHERE read_model = %s "
                "AND expires_at < clock_timestamp() - %s * interval '1 second'",
                (self.group, FORGET_AFTER_SECONDS),
            )
            conn.execute(
                "INSERT INTO projection_workers (read_model, worker, lock_key, expires_at) "
                "VALUES (%s, %s, %s, clock_timestamp() + %s * interval '1 second') "
                "ON CONFLICT (read_model, worker) DO UPDATE "
                "SET lock_key = excluded.lock_key, expires_at = excluded.expires_at",
                (self.group, self.name, self._lock_key, LEASE_SECONDS),
            )
            found = conn.execute(_ALIVE, {"group": self.group, "lock_class": LOCK_CLASS})
            alive = [row[0] for row in found]
            rows = conn.execute(
                "SELECT slice, owner, token FROM projection_slices WHERE read_model = %s "
                "ORDER BY slice FOR UPDATE",
                (self.group,),
            ).fetchall()
            mine = {s for s in range(SLICES) if alive and alive[s % len(alive)] == self.name}
            granted: dict[int, int] = {}
            leaving: set[int] = set()
            for slice_number, owner, token in rows:
                if owner == self.name and slice_number not in mine and slice_number in released:
                    conn.execute(
                        "UPDATE projection_slices SET owner = NULL "
                        "WHERE read_model = %s AND slice = %s",
                        (self.group, slice_number),
                    )
                elif owner == self.name:
                    if outdated.get(slice_number, 0) >= token:
                        # Redis holds a token this group never granted (an earlier
                        # group's): ours must be above it to be taken.
                        token = outdated[slice_number] + 1
                        conn.execute(
                            "UPDATE projection_slices SET token = %s "
                            "WHERE read_model = %s AND slice = %s",
                            (token, self.group, slice_number),
                        )
                    granted[slice_number] = token
                    if slice_number not in mine:
                        leaving.add(slice_number)
                elif slice_number in mine and (owner is None or owner not in alive):
                    token += 1
                    conn.execute(
                        "UPDATE projection_slices SET owner = %s, token = %s "
                        "WHERE read_model = %s AND slice = %s",
                        (self.name, token, self.group, slice_number),
                    )
                    granted[slice_number] = token
        with self._lock:
            changed = granted != self._granted or leaving != self._leaving
            self._granted, self._leaving = granted, leaving
            self._released -= released
            for slice_number in outdated:
                if self._outdated.get(slice_number) == outdated[slice_number]:
                    del self._outdated[slice_number]
            self.members = alive
            if changed:
                self._version += 1
        if changed:
            self.on_change()
