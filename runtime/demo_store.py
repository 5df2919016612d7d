"""Append sample customers, logins, orders, cancellations and refunds to an event store.

Used by `customers demo` (runtime/cli_demo.py), the tests and the benchmarks. Histories
come from runtime.demo_data and are written through the write side's domain
aggregates and CustomerService, many customers per transaction: the same events producers
would cause, appended fast enough to fill a store for benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from runtime.demo_data import CustomerPlan, SampleData
from write_side.application import CustomerService
from write_side.domain.customer import Customer
from write_side.domain.ids import customer_stream_id
from write_side.domain.order import Order

BATCH_SIZE = 250
MAX_BATCH_ATTEMPTS = 5


@dataclass
class Tally:
    customers: int = 0
    logins: int = 0
    orders: int = 0
    cancellations: int = 0
    refunds: int = 0
    deactivations: int = 0
    events: int = 0
    last_position: int = 0


def has_customers(service: CustomerService) -> bool:
    registered = service.recorder.select_notifications(1, 1, topics=[Customer.Registered.TOPIC])
    return bool(registered)


def append_sample(
    service: CustomerService, count: int, seed: int, progress_console: Console | None = None
) -> Tally:
    """Append `count` customers with their histories after the highest customer id taken."""
    sample = SampleData(seed, today=datetime.now(UTC).date())
    tally = Tally()
    next_id = first_free_customer_id(service)
    columns = (
        TextColumn("customers"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} customers/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=progress_console, transient=False) as progress:
        task = progress.add_task("demo", total=count, rate="-")
        started = time.perf_counter()
        for size in batch_sizes(count, BATCH_SIZE):
            plans = [sample.customer(next_id + n) for n in range(size)]
            plans = save_batch(service, plans, tally)
            next_id = plans[-1].customer_id + 1
            tally.customers += size
            rate = tally.customers / max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=size, rate=f"{rate:,.0f}")
    return tally


def batch_sizes(total: int, batch: int) -> Iterator[int]:
    full, rest = divmod(total, batch)
    yield from [batch] * full
    if rest:
        yield rest


def save_batch(
    service: CustomerService, plans: list[CustomerPlan], tally: Tally
) -> list[CustomerPlan]:
    """Save the batch in one transaction; if another writer took one of its ids, move on."""
    for _ in range(MAX_BATCH_ATTEMPTS):
        counts = Tally()
        events = list(history_events(plans, counts))
        try:
            recordings = service.events.put(events)
        except IntegrityError:
            start = first_free_customer_id(service, plans[0].customer_id)
            plans = [renumbered(plan, start + n) for n, plan in enumerate(plans)]
            continue
        for name in ("logins", "orders", "cancellations", "refunds", "deactivations"):
            setattr(tally, name, getattr(tally, name) + getattr(counts, name))
        tally.events += len(recordings)
        tally.last_position = recordings[-1].notification.id
        return plans
    raise RuntimeError("other writers kept taking the sample's customer ids; try again")


def history_events(plans: Iterable[CustomerPlan], counts: Tally) -> Iterator[Any]:
    """Each customer's events in the order producers would send them."""
    for plan in plans:
        customer = Customer(customer_id=plan.customer_id, profile=dict(plan.profile))
        for _ in range(plan.logins):
            customer.record_login(datetime.now(UTC))
        counts.logins += plan.logins
        yield from customer.collect_events()
        for order_plan in plan.orders:
            order = Order(
                order_id=order_plan.order_id,
                customer_id=plan.customer_id,
                amount=order_plan.amount,
                placed_at=datetime.now(UTC),
            )
            for refund in order_plan.refunds:
                order.refund(refund)
            if order_plan.cancelled:
                order.cancel()
            counts.orders += 1
            counts.refunds += len(order_plan.refunds)
            counts.cancellations += int(order_plan.cancelled)
            yield from order.collect_events()
        if plan.deactivated:
            customer.deactivate()
            counts.deactivations += 1
            yield from customer.collect_events()


def renumbered(plan: CustomerPlan, customer_id: int) -> CustomerPlan:
    orders = tuple(
        replace(order, order_id=f"demo-{customer_id}-{n}")
        for n, order in enumerate(plan.orders, start=1)
    )
    return replace(plan, customer_id=customer_id, orders=orders)


def first_free_customer_id(service: CustomerService, start: int = 1) -> int:
    """The first id at or after `start` past the run of taken ids (ids are dense)."""

    def taken(customer_id: int) -> bool:
        return bool(service.recorder.select_events(customer_stream_id(customer_id), limit=1))

    if not taken(start):
        return start
    low, step = start, 1
    while taken(low + step):
        low += step
        step *= 2
    high = low + step
    while high - low > 1:
        middle = (low + high) // 2
        if taken(middle):
            low = middle
        else:
            high = middle
    return high


def summary(tally: Tally, elapsed: float) -> str:
    rate = tally.customers / elapsed if elapsed > 0 else 0.0
    return (
        f"Added {tally.customers:,} customers, {tally.logins:,} logins, {tally.orders:,} orders, "
        f"{tally.cancellations:,} cancellations, {tally.refunds:,} refunds and "
        f"{tally.deactivations:,} deactivations: {tally.events:,} events up to position "
        f"{tally.last_position} in {elapsed:.1f} s ({rate:,.0f} customers/s)."
    )
