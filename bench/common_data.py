"""Realistic, reproducible customers for benchmarks, saved in batches through the application."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from eventsourcing.persistence import StoredEvent

from write_side.application import CustomerService
from write_side.domain.customer import Customer, Profile
from write_side.domain.order import Order

FIRST_NAMES = (
    "Sara", "Ali", "Maryam", "Reza", "Niloufar", "Hossein", "Zahra", "Mohammad", "Leila",
    "Amir", "Fatemeh", "Kaveh", "Shirin", "Dariush", "Parisa", "Babak",
)  # fmt: skip
LAST_NAMES = (
    "Ahmadi", "Karimi", "Hosseini", "Rahimi", "Moradi", "Jafari", "Rezaei", "Sadeghi",
    "Mohammadi", "Kazemi", "Ebrahimi", "Ghasemi", "Shirazi", "Tehrani", "Najafi", "Farahani",
)  # fmt: skip
NOTES = (
    "Prefers contact by email.",
    "VIP since the spring campaign.",
    "Asked for invoices in English.",
    "Delivery to the office on weekdays.",
)
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SampleCustomer:
    customer_id: int
    profile: Profile
    login_at: datetime
    order_amount: Decimal
    placed_at: datetime


def sample_customer(customer_id: int, rng: random.Random) -> SampleCustomer:
    """A customer with every profile field set, one login and one order."""
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    birth = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 20_000))
    profile: Profile = {
        "first_name": first,
        "last_name": last,
        "email": f"{first.lower()}.{last.lower()}{customer_id}@example.com",
        "mobile_number": f"+989{rng.randrange(10**8, 10**9)}",
        "national_code": f"{rng.randrange(10**9, 10**10)}",
        "birth_date": birth.isoformat(),
        "gender": rng.choice(("male", "female")),
        "notes": rng.choice(NOTES),
    }
    return SampleCustomer(
        customer_id=customer_id,
        profile=profile,
        login_at=EPOCH + timedelta(seconds=rng.randrange(0, 60 * 86_400), microseconds=123),
        order_amount=Decimal(rng.randrange(100, 5_000_000)) / 100,
        placed_at=EPOCH + timedelta(seconds=rng.randrange(0, 60 * 86_400)),
    )


def sample_customers(count: int, first_id: int = 1, seed: int = 7) -> Iterator[SampleCustomer]:
    rng = random.Random(seed)
    for customer_id in range(first_id, first_id + count):
        yield sample_customer(customer_id, rng)


def customer_aggregates(sample: SampleCustomer) -> list[Customer | Order]:
    """The aggregates the HTTP commands would produce: registered, logged in, one order."""
    customer = Customer(customer_id=sample.customer_id, profile=sample.profile)
    customer.record_login(sample.login_at)
    order = Order(
        order_id=f"o{sample.customer_id}",
        customer_id=sample.customer_id,
        amount=sample.order_amount,
        placed_at=sample.placed_at,
    )
    return [customer, order]


def save_customers(
    service: CustomerService, customers: Iterator[SampleCustomer], batch: int = 500
) -> int:
    """Save each customer's aggregates through Application.save; returns events written.

    Batches go to save in one transaction each: the application path, for small stores.
    """
    pending: list[Customer | Order] = []
    events = 0
    for sample in customers:
        pending += customer_aggregates(sample)
        events += 3
        if len(pending) >= batch * 2:
            service.save(*pending)
            pending = []
    if pending:
        service.save(*pending)
    return events


def bulk_load_customers(
    service: CustomerService, customers: Iterator[SampleCustomer], batch: int = 5000
) -> int:
    """Append the same events as save_customers, fast enough for million-event stores.

    Events are made by the aggregates and encoded by the application's own mapper, so the
    stored rows are byte for byte what save would write; only the insert differs: COPY on
    PostgreSQL, one multi-row insert per batch on SQLite. Returns events written.
    """
    recorder = service.recorder
    copy_into = _postgres_copy(service)
    stored: list[StoredEvent] = []
    events = 0

    def flush() -> None:
        if copy_into is not None:
            copy_into(stored)
        else:
            recorder.insert_events(stored)
        stored.clear()

    for sample in customers:
        for aggregate in customer_aggregates(sample):
            for domain_event in aggregate.collect_events():
                stored.append(service.mapper.to_stored_event(domain_event))
        events += 3
        if len(stored) >= batch:
            flush()
    if stored:
        flush()
    return events


def _postgres_copy(service: CustomerService) -> Callable[[list[StoredEvent]], None] | None:
    try:
        from eventsourcing.postgres import PostgresApplicationRecorder
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return None
    recorder = service.recorder
    if not isinstance(recorder, PostgresApplicationRecorder):
        return None
    from psycopg.sql import SQL, Identifier

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
