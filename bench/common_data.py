"""Sample customers for the benchmarks: `customers demo`'s histories, loaded fast.

The people, logins, orders, cancellations and refunds come from runtime.demo_data, made
`complete` (every profile field set, every customer logged in and ordered at least once,
none deactivated, so each can be read, sized and ordered against), and become events
through runtime.demo_store's aggregates and the application's own mapper: the rows are
byte for byte what the write side stores. Only the insert differs, so that a million events
load in minutes, not hours: COPY on PostgreSQL, one multi-row insert per batch on SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import redis
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from bench.common import redis_url
from projections.projector import Projector
from projections.read_model import Keys
from runtime.demo_data import CustomerPlan, SampleData
from runtime.demo_store import Tally, history_events
from runtime.settings import event_store_env
from write_side.application import CustomerService

SEED = 20240601
TODAY = date(2025, 1, 1)  # birth dates from a fixed day: the same data on every run
DESCRIPTION = (
    "`customers demo`'s sample customers (runtime/demo_data.py) with every profile field "
    "set, 1-5 logins and 1-6 orders each (some cancelled or refunded), none deactivated: "
    "about 6.4 events per customer"
)


def sample_plans(count: int) -> Iterator[CustomerPlan]:
    """The first `count` sample customers, ids 1 to count, the same on every call."""
    sample = SampleData(SEED, TODAY, complete=True)
    return (sample.customer(customer_id) for customer_id in range(1, count + 1))


def load_sample(
    service: CustomerService, customers: int = 0, *, events: int = 0, batch: int = 5000
) -> Tally:
    """Append sample customers until there are `customers` of them and `events` events.

    Returns the tally of what was written (customers, orders, cancellations, events ...).
    """
    write = _postgres_copy(service) or service.recorder.insert_events
    sample = SampleData(SEED, TODAY, complete=True)
    tally = Tally()
    stored: list[StoredEvent] = []
    while tally.customers < customers or tally.events < events:
        tally.customers += 1
        for event in history_events([sample.customer(tally.customers)], tally):
            stored.append(service.mapper.to_stored_event(event))
            tally.events += 1
        if len(stored) >= batch:
            write(stored)
            stored = []
    if stored:
        write(stored)
    tally.last_position = service.recorder.max_notification_id() or 0
    return tally


def load_and_project(store_url: str, customers: int, prefix: str) -> dict[str, Any]:
    """Load `customers` sample customers into a store, then project them into `prefix` with
    our projector: the events written, the projector's position, and each step's time."""
    service = CustomerService(event_store_env(store_url))
    client = redis.Redis.from_url(redis_url())
    try:
        started = time.perf_counter()
        events = load_sample(service, customers).events
        loaded = time.perf_counter()
        projector = Projector(service.recorder, client, Keys(prefix))
        projector.catch_up()
        return {
            "events": events,
            "position": projector.position,
            "load_seconds": round(loaded - started, 2),
            "project_seconds": round(time.perf_counter() - loaded, 2),
        }
    finally:
        client.close()
        service.close()


def _postgres_copy(service: CustomerService) -> Callable[[list[StoredEvent]], object] | None:
    recorder = service.recorder
    if not isinstance(recorder, PostgresApplicationRecorder):
        return None
    statement = SQL(
        "COPY {0}.{1} (originator_id, originator_version, topic, state) FROM STDIN"
    ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))

    def copy_into(stored: list[StoredEvent]) -> None:
        with recorder.datastore.transaction(commit=True) as cursor, cursor.copy(statement) as copy:
            for event in stored:
                copy.write_row(
                    (event.originator_id, event.originator_version, event.topic, event.state)
                )

    return copy_into
