"""Store details the library does not cover: position and topic lookups, a fail-fast recorder."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    ApplicationRecorder,
    InterfaceError,
    Notification,
    OperationalError,
)
from eventsourcing.postgres import (
    ConnectionPool,
    PostgresApplicationRecorder,
    PostgresDatastore,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

log = logging.getLogger("customers.store")

T = TypeVar("T")
Pool = ConnectionPool[psycopg.Connection[DictRow]]

_STORE_ERRORS = (InterfaceError, OperationalError)

# How long a caller waits for the server to accept a fresh connection before it is taken
# to be down. A healthy server takes milliseconds; this bounds every write's wait in an
# outage (a frozen server never answers, a stopped one refuses at once).
PROBE_WAIT_SECONDS = 0.75
# psycopg's smallest connect timeout; it only bounds a probe's thread, not its callers.
PROBE_CONNECT_TIMEOUT_SECONDS = 2
# A store call running longer than this has the server probed, and again as often while
# it runs: a healthy server answers, so a long query is left alone.
SLOW_CALL_SECONDS = 0.5
WATCH_INTERVAL_SECONDS = 0.1
ATTEMPTS = 3
RETRY_WAIT_SECONDS = 0.2


class StoreGuard:
    """Keeps a PostgreSQL outage from holding up callers, and recovers from it unattended.

    The library's pool, left alone, makes an outage slow and its end slower: a call waits
    the whole pool timeout for a connection that cannot come, a query on a frozen server
    waits forever, and the pool's reconnection backs off exponentially (up to minutes), so
    it keeps failing long after the server is back.

    Here every call goes through `call`. When one fails, or runs longer than
    SLOW_CALL_SECONDS, the server is probed with one fresh connection (shared by everyone
    who asks meanwhile, each waiting PROBE_WAIT_SECONDS at most). If the server answers,
    the call is retried, on new connections if its own was lost (a restart). If not, the
    store is down: the pool is replaced by a fresh, unopened one (which fails every
    caller waiting in the old one), the sockets of all connections are shut down (which
    fails every call blocked on a frozen server), and from then on each call only waits
    for a probe: it fails with OperationalError until one succeeds, and then goes on
    with the fresh pool.
    """

    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore
        self._template: Pool = datastore.pool
        assert isinstance(self._template.kwargs, dict)  # as the library builds it
        self._pool_kwargs: dict[str, Any] = {
            **self._template.kwargs,
            "connect_timeout": max(PROBE_CONNECT_TIMEOUT_SECONDS, round(self._template.timeout)),
        }
        self._after_connect = datastore.after_connect_func()
        self._connections: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._down = False
        self._probe = _Probe(self._connect_fresh, PROBE_WAIT_SECONDS)
        self._calls: dict[int, float] = {}  # calls in flight: id -> when each started
        self._call_ids = itertools.count()
        self._answered_at = float("-inf")  # the last probe that succeeded
        datastore.pool = self._new_pool()
        self._template.close()  # never opened: it only held the settings
        _WATCHDOG.watch(self)

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`method(*args, **kwargs)`, failing fast while the server does not answer."""
        attempt = 1
        while True:
            if self._down:
                self._probe.check()
                self._mark_up()
            call_id = next(self._call_ids)
            self._calls[call_id] = time.monotonic()
            try:
                return method(*args, **kwargs)
            except _STORE_ERRORS as error:
                if attempt == ATTEMPTS or not self._answers():
                    raise
                if _lost_connection(error):
                    self._datastore.pool.drain()  # its other connections are as stale
                else:
                    time.sleep(RETRY_WAIT_SECONDS)
            finally:
                del self._calls[call_id]
            attempt += 1

    def check_slow_calls(self) -> None:
        """Probe the server if a call has been running long; the watchdog's tick."""
        started = self._calls.copy().values()
        now = time.monotonic()
        if self._down or not started or now - min(started) < SLOW_CALL_SECONDS:
            return
        if now - self._answered_at >= SLOW_CALL_SECONDS:
            self._answers()

    def _answers(self) -> bool:
        """Whether the server accepts a fresh connection; marks the store down if not."""
        if self._down:
            return False
        try:
            self._probe.check()
        except OperationalError as error:
            self._mark_down(error)
            return False
        self._answered_at = time.monotonic()
        return True

    def _mark_down(self, error: Exception) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
            stale = self._datastore.pool
            self._datastore.pool = self._new_pool()
            connections = list(self._connections)
        log.warning("event store unavailable, failing fast until it answers: %s", error)
        for connection in connections:
            _sever(connection)
        _close_in_background(stale)

    def _mark_up(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
            stale: Pool | None = None
            if not self._datastore.pool.closed:
                # Opened during the outage by a caller that does not come through here
                # (the projector's LISTEN): its reconnection may be backing off.
                stale = self._datastore.pool
                self._datastore.pool = self._new_pool()
        log.warning("event store available again")
        if stale is not None:
            _close_in_background(stale)

    def _new_pool(self) -> Pool:
        """A pool as the library configured it, whose connections are known here and
        whose background connection attempts give up (a frozen server never answers)."""
        template = self._template
        return type(template)(
            get_password_func=template.get_password_func,
            connection_class=template.connection_class,
            kwargs=dict(self._pool_kwargs),
            min_size=template.min_size,
            max_size=template.max_size,
            open=False,
            configure=self._configure,
            timeout=template.timeout,
            max_waiting=template.max_waiting,
            max_lifetime=template.max_lifetime,
            check=ConnectionPool.check_connection if self._datastore.pre_ping else None,
        )

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        self._after_connect(connection)
        self._connections.add(connection)

    def _connect_fresh(self) -> None:
        kwargs = {name: value for name, value in self._pool_kwargs.items() if name != "row_factory"}
        if self._template.get_password_func is not None:
            kwargs["password"] = self._template.get_password_func()
        kwargs["connect_timeout"] = PROBE_CONNECT_TIMEOUT_SECONDS
        psycopg.Connection.connect(**kwargs).close()


class _Probe:
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


class _Watchdog:
    """One thread per process that looks for slow calls in every guard, a few times a second."""

    def __init__(self) -> None:
        self._guards: weakref.WeakSet[StoreGuard] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, guard: StoreGuard) -> None:
        with self._lock:
            self._guards.add(guard)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="store-watchdog", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL_SECONDS)
            with self._lock:
                guards = list(self._guards)
            for guard in guards:
                try:
                    guard.check_slow_calls()
                except Exception:
                    log.exception("event store watchdog failed")


_WATCHDOG = _Watchdog()


def _lost_connection(error: Exception) -> bool:
    """Whether the call's connection is gone (the server went away), not refused by it."""
    if isinstance(error, InterfaceError):
        return True
    cause = error.__cause__
    if not isinstance(cause, psycopg.Error):
        return True
    state = cause.sqlstate
    # No state: the connection broke (or none came); 08: connection exception; 57P:
    # the server is shutting down or starting.
    return state is None or state.startswith(("08", "57P"))


def _sever(connection: psycopg.Connection[Any]) -> None:
    """Shut down a connection's socket: a thread blocked on it fails at once."""
    pgconn = connection.pgconn
    try:
        descriptor = pgconn.socket
        duplicate = socket.socket(fileno=os.dup(descriptor))
    except (OSError, psycopg.Error):
        return  # closed already
    with duplicate:
        # The descriptor was the connection's own when duplicated only if libpq still
        # holds it now: once closed, a descriptor number may belong to anything.
        try:
            still_its_own = pgconn.socket == descriptor
        except psycopg.Error:
            still_its_own = False
        if still_its_own:
            with contextlib.suppress(OSError):
                duplicate.shutdown(socket.SHUT_RDWR)


def _close_in_background(pool: Pool) -> None:
    # Closing joins the pool's workers, which may be stuck connecting to a frozen server.
    threading.Thread(target=pool.close, name="store-pool-close", daemon=True).start()


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """The library's method without its 10-attempt retry, run through the recorder's guard."""
    undecorated: Callable[..., Any] = method.__wrapped__  # type: ignore[attr-defined]

    def guarded(self: FailFastPostgresApplicationRecorder, *args: Any, **kwargs: Any) -> Any:
        return self.guard.call(undecorated, self, *args, **kwargs)

    guarded.__doc__ = undecorated.__doc__
    return guarded


LIBPQ_ENV_PREFIX = "LIBPQ_"  # as runtime.settings writes them into the environment


def with_connection_options(factory: object, env: Mapping[str, str]) -> None:
    """Pass LIBPQ_* options (sslmode, sslrootcert, ...) to every pooled connection.

    The library's PostgreSQL datastore knows only host, port, database, user and password;
    its pool is created closed, so options added here reach the very first connection.
    """
    datastore = getattr(factory, "datastore", None)
    if not isinstance(datastore, PostgresDatastore):
        return
    assert isinstance(datastore.pool.kwargs, dict)
    for name, value in env.items():
        if name.startswith(LIBPQ_ENV_PREFIX):
            datastore.pool.kwargs[name[len(LIBPQ_ENV_PREFIX) :].lower()] = value


class FailFastPostgresApplicationRecorder(PostgresApplicationRecorder):
    """The library's PostgreSQL recorder, failing fast while the server is unreachable.

    The library retries each call 10 times, each waiting up to the connect timeout for a
    pooled connection: a minute before an unreachable store is reported. Here a StoreGuard
    reports it within PROBE_WAIT_SECONDS of a call failing (SLOW_CALL_SECONDS more if the
    server hangs), and still rides over stale pooled connections after a restart.
    """

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.guard = StoreGuard(datastore)

    insert_events = _guarded(PostgresApplicationRecorder.insert_events)
    select_events = _guarded(PostgresApplicationRecorder.select_events)
    select_notifications = _guarded(PostgresApplicationRecorder.select_notifications)
    max_notification_id = _guarded(PostgresApplicationRecorder.max_notification_id)


def _on_postgres(recorder: PostgresApplicationRecorder, query: Callable[[], T]) -> T:
    if isinstance(recorder, FailFastPostgresApplicationRecorder):
        return recorder.guard.call(query)
    return query()


def position_of(recorder: ApplicationRecorder, originator_id: UUID, version: int) -> int | None:
    """The notification id (event store position) of one stored event, if it exists.

    PostgreSQL queries here run as single autocommit statements: no BEGIN/ROLLBACK trips.
    """
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


def notifications_of_customer(
    recorder: ApplicationRecorder, customer_id: int
) -> list[Notification]:
    """Every stored event whose state names `customer_id`, in position order.

    Customer and order events all carry the customer's id; the store finds them by their
    bytes (JSON as the library's transcoder writes it) without the application decoding
    the whole log. The bytes match is a superset only in theory (a text field holding the
    same characters): callers decode each event and keep those of this customer.
    """
    needles = [f'"customer_id":{customer_id}{end}'.encode() for end in (",", "}")]
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
