"""The library's PostgreSQL recorder, failing fast in an outage, with libpq options passed on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from write_side.store_adapter.guard import StoreGuard


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """The library's method without its 10-attempt retry, run through the recorder's guard."""
    undecorated: Callable[..., Any] = method.__wrapped__  # type: ignore[attr-defined]

    def guarded(self: FailFastPostgresApplicationRecorder, *args: Any, **kwargs: Any) -> Any:
        return self.guard.call(undecorated, self, *args, **kwargs)

    guarded.__doc__ = undecorated.__doc__
    return guarded


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


def with_connection_options(factory: object, options: Mapping[str, str]) -> None:
    """Pass libpq options (sslmode, sslrootcert, ...) to every pooled connection.

    The library's PostgreSQL datastore knows only host, port, database, user and password;
    its pool is created closed, so options added here reach the very first connection.
    """
    datastore = getattr(factory, "datastore", None)
    if not isinstance(datastore, PostgresDatastore):
        return
    assert isinstance(datastore.pool.kwargs, dict)
    datastore.pool.kwargs.update(options)
