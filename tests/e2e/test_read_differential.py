"""Served bodies equal the audit's independent fold of the events, for random customers."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest

from projections.replay import history
from runtime.container import Container
from runtime.http import build_app
from runtime.settings import Settings
from tests.support.live_app import serving
from write_side.application import CustomerService
from write_side.domain.customer import Profile

CUSTOMERS = 300
FIELDS = ("first_name", "last_name", "email", "mobile_number", "national_code", "notes")


@pytest.fixture
def container(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[Container]:
    settings = Settings(
        EVENT_STORE_URL=f"sqlite:///{tmp_path / 'events.sqlite'}",
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
    )
    container = Container(settings)
    container.start_redis()
    yield container
    container.close()


def random_profile(rng: random.Random, customer_id: int) -> Profile:
    profile: Profile = {}
    for name in FIELDS:
        if rng.random() < 0.7:
            profile[name] = f"{name}-{customer_id}-{rng.randrange(1000)}"
    if "email" in profile:
        profile["email"] = f"c{customer_id}.{rng.randrange(1000)}@example.com"
    if rng.random() < 0.7:
        year, month, day = rng.randrange(1940, 2005), rng.randrange(1, 13), rng.randrange(1, 29)
        profile["birth_date"] = f"{year}-{month:02d}-{day:02d}"
    if rng.random() < 0.7:
        profile["gender"] = rng.choice(["male", "female"])
    return profile


def random_history(service: CustomerService, rng: random.Random, customer_id: int) -> None:
    """Register one customer, then a random mix of everything that can happen to them."""
    service.register_customer(customer_id, random_profile(rng, customer_id))
    active = True
    orders: list[tuple[str, Decimal, Decimal]] = []  # id, amount, refunded
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for _ in range(rng.randrange(0, 8)):
        action = rng.random()
        if action < 0.15:
            changes = random_profile(rng, customer_id)
            changes.update({name: None for name in rng.sample(FIELDS, 2)})
            service.update_profile(customer_id, changes)
        elif action < 0.3:
            # Logins arrive in any order; the latest time must win.
            service.record_login(customer_id, start + timedelta(minutes=rng.randrange(100_000)))
        elif action < 0.4:
            if active:
                service.deactivate_customer(customer_id)
            else:
                service.reactivate_customer(customer_id)
            active = not active
        elif action < 0.75 and active:
            amount = Decimal(rng.randrange(1, 10_000_000)) / 100
            order_id = service.place_order(customer_id, amount).result["order_id"]
            orders.append((order_id, amount, Decimal(0)))
        elif action < 0.85 and orders:
            index = rng.randrange(len(orders))
            order_id, _, _ = orders.pop(index)
            service.cancel_order(order_id)
        elif orders:
            index = rng.randrange(len(orders))
            order_id, amount, refunded = orders[index]
            refund = min(amount - refunded, Decimal(rng.randrange(1, 5000)) / 100)
            if refund > 0:
                service.refund_order(order_id, refund)
                orders[index] = (order_id, amount, refunded + refund)


def test_served_bodies_equal_the_fold_of_the_events(container: Container) -> None:
    rng = random.Random(20240601)
    service = container.write_service
    admin_key = service.issue_api_key("differential-admin", "admin").key
    ids = [*rng.sample(range(1, 2**63), CUSTOMERS - 2), 1, 2**63 - 1]
    for customer_id in ids:
        random_history(service, rng, customer_id)

    # The projector applies everything; the audit folds the same events independently.
    applied = container.projector.catch_up()
    expected = history(service.recorder, set())
    assert sorted(expected) == sorted(ids)

    with (
        serving(build_app(container, write=False, read=True)) as base_url,
        httpx.Client(base_url=base_url, timeout=10) as client,
    ):
        headers = {"Authorization": f"Token {admin_key}", "X-Min-Position": str(applied)}
        for customer_id in ids:
            response = client.get(f"/api/customers/{customer_id}", headers=headers)
            assert response.status_code == 200, response.text
            assert response.content == orjson.dumps(expected[customer_id]), customer_id
