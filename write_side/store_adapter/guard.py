"""StoreGuard: PostgreSQL outages fail callers fast and end unattended, on the library's pool."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import ConnectionPool, PostgresDatastore
from psycopg.rows import DictRow

from write_side.store_adapter.probe import Probe

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
        self._probe = Probe(self._connect_fresh, PROBE_WAIT_SECONDS)
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
            self._tick()

    def _tick(self) -> None:
        # Its own frame: a list of the guards left alive while the loop sleeps held every
        # guard until the next tick listed it again, so none was ever let go (the guards of
        # closed stores, with their pools, piled up and were all checked every tick).
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
