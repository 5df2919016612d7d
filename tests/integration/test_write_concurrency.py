"""Concurrent writers on real stores: ids stay unique, no update is lost, money adds up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from runtime.container import Container
from runtime.http import build_app
from runtime.settings import Settings, event_store_env
from write_side.application import CustomerService
from write_side.command_runner import Written
from write_side.domain.customer import Customer, CustomerInactiveError
from write_side.domain.order import Order, OrderCancelledError, RefundExceedsAmountError
from write_side.errors import CustomerNotFoundError

T = TypeVar("T")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service(event_store_url: str) -> Iterator[CustomerService]:
    service = CustomerService(event_store_env(event_store_url))
    yield service
    service.close()


def all_at_once(count: int, task: Callable[[int], T]) -> list[T | Exception]:
    """Run `task(i)` for i in range(count) on `count` threads released together."""
    start = threading.Barrier(count)

    def run(i: int) -> T | Exception:
        start.wait()
        try:
            return task(i)
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def events_of(service: CustomerService, topic: str) -> list[object]:
    notifications = service.recorder.select_notifications(1, 100_000, topics=[topic])
    return [service.mapper.to_domain_event(n) for n in notifications]


def test_100_concurrent_registrations_without_id_get_100_distinct_ids(
    service: CustomerService,
) -> None:
    # 100 threads register at the same moment, none naming an id.
    results = all_at_once(100, lambda _: service.register_customer(None, {}).result["id"])
    # Every one succeeded with its own id, and the ids are the first 100 integers.
    assert sorted(results) == list(range(1, 101))  # type: ignore[type-var]
    assert len(events_of(service, Customer.Registered.TOPIC)) == 100


def test_two_services_sharing_one_store_never_allocate_the_same_id(event_store_url: str) -> None:
    # Two write-side services (as two processes would) allocate ids from one store.
    first = CustomerService(event_store_env(event_store_url))
    second = CustomerService(event_store_env(event_store_url))
    try:
        results = all_at_once(
            60,
            lambda i: (first if i % 2 else second).register_customer(None, {}).result["id"],
        )
    finally:
        first.close()
        second.close()
    # Each service starts from the same first free id, so they collide and must move on.
    assert sorted(results) == list(range(1, 61))  # type: ignore[type-var]


SECOND_PROCESS = """
import sys
from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.command_runner import Written

service = CustomerService(event_store_env(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
ids = [service.register_customer(None, {}).result["id"] for _ in range(int(sys.argv[2]))]
print(" ".join(map(str, ids)), flush=True)
service.close()
"""


@pytest.mark.postgres
def test_a_second_process_allocating_ids_at_the_same_time_never_collides(
    postgres_url: str,
) -> None:
    service = CustomerService(event_store_env(postgres_url))
    # Register one customer first, so the table exists before the other process starts.
    ids = [service.register_customer(None, {}).result["id"]]
    # A separate OS process gets ready, then both register 40 customers at the same time.
    other = subprocess.Popen(
        [sys.executable, "-c", SECOND_PROCESS, postgres_url, "40"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdin is not None
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "ready"
        other.stdin.write("go\n")
        other.stdin.flush()
        ids += [service.register_customer(None, {}).result["id"] for _ in range(40)]
        out, _ = other.communicate(timeout=60)
    finally:
        service.close()
    assert other.returncode == 0
    ids += [int(text) for text in out.split()]
    # 81 registrations, 81 distinct ids, no gaps.
    assert sorted(ids) == list(range(1, 82))


def test_200_concurrent_orders_for_one_customer_are_all_recorded(event_store_url: str) -> None:
    container = Container(Settings(EVENT_STORE_URL=event_store_url))
    service = container.write_service
    key = service.issue_api_key("shop", "producer").key
    customer_id = service.register_customer(None, {}).result["id"]
    app = build_app(container, write=True, read=False)

    async def place_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Token {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://write") as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/orders",
                        json={"customer_id": customer_id, "amount": "1.25"},
                        headers=headers,
                    )
                    for _ in range(200)
                )
            )

    try:
        # 200 orders for one customer arrive at once over HTTP.
        responses = asyncio.run(place_all())
        placed = events_of(service, Order.Placed.TOPIC)
    finally:
        container.close()
    # All were acknowledged, each at its own position, and all 200 are in the store.
    assert [r.status_code for r in responses] == [201] * 200
    assert len({r.json()["position"] for r in responses}) == 200
    assert len(placed) == 200
    assert sum(e.amount for e in placed if isinstance(e, Order.Placed)) == Decimal("250.00")


def test_concurrent_refunds_on_one_order_never_exceed_its_amount(service: CustomerService) -> None:
    service.register_customer(1, {})
    service.place_order(1, Decimal("10.00"), order_id="big")
    # 30 refunds of 1.00 race for an order of 10.00.
    results = all_at_once(30, lambda _: service.refund_order("big", Decimal("1.00")))
    # Exactly ten fit; the others were refused, none was lost or double-applied.
    refused = [r for r in results if isinstance(r, RefundExceedsAmountError)]
    assert len(refused) == 20
    assert len(events_of(service, Order.Refunded.TOPIC)) == 10
    assert service.get_order("big").refunded == Decimal("10.00")


def test_a_cancel_racing_refunds_never_counts_money_twice(service: CustomerService) -> None:
    service.register_customer(1, {})
    service.place_order(1, Decimal("10.00"), order_id="o-1")

    def cancel_or_refund(i: int) -> object:
        if i == 5:
            return service.cancel_order("o-1")
        return service.refund_order("o-1", Decimal("1.00"))

    # One cancel and nine refunds arrive at the same moment.
    results = all_at_once(10, cancel_or_refund)
    # Every command either succeeded or, coming after the cancel, was refused as cancelled.
    assert {type(r) for r in results} <= {Written, OrderCancelledError}
    assert isinstance(results[5], Written)
    refunds = [e for e in events_of(service, Order.Refunded.TOPIC) if isinstance(e, Order.Refunded)]
    cancels = [
        e for e in events_of(service, Order.Cancelled.TOPIC) if isinstance(e, Order.Cancelled)
    ]
    assert len(cancels) == 1
    # What the order counted is removed exactly once: amount - refunds - removed == 0.
    refunded = sum((e.amount for e in refunds), Decimal("0.00"))
    assert Decimal("10.00") - refunded - (cancels[0].amount - cancels[0].refunded) == 0


def test_a_customer_deactivated_by_another_process_cannot_order_here(
    event_store_url: str,
) -> None:
    here = CustomerService(event_store_env(event_store_url))
    elsewhere = CustomerService(event_store_env(event_store_url))
    try:
        # This process has seen the customer active, and placed an order.
        here.register_customer(1, {})
        here.place_order(1, Decimal("1.00"))
        # Another process deactivates the customer.
        elsewhere.deactivate_customer(1)
        # The next order here reads the store afresh and is refused.
        with pytest.raises(CustomerInactiveError):
            here.place_order(1, Decimal("1.00"))
        elsewhere.reactivate_customer(1)
        here.place_order(1, Decimal("1.00"))
        with pytest.raises(CustomerNotFoundError):
            here.place_order(2, Decimal("1.00"))
        # A customer registered elsewhere can order here at once.
        elsewhere.register_customer(2, {})
        here.place_order(2, Decimal("1.00"))
        assert len(events_of(here, Order.Placed.TOPIC)) == 3
    finally:
        here.close()
        elsewhere.close()
