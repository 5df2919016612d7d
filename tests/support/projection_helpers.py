"""Shared helpers for the projection tests (this module holds no tests itself)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from projections.customer_record import bucket_records, fields_of, read_customer, read_fields
from projections.customer_view import fold
from projections.generation import current_generation
from projections.read_model import Keys
from projections.replay import customer_changes, notifications
from runtime.settings import event_store_env
from tests.support.waiting import wait_until as polled_until
from write_side.application import CustomerService


@contextmanager
def customer_service(event_store_url: str) -> Iterator[CustomerService]:
    service = CustomerService(event_store_env(event_store_url))
    try:
        yield service
    finally:
        service.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll until the condition holds; fail naming what never happened."""
    if not polled_until(condition, deadline=timeout):
        raise AssertionError(f"timed out waiting until {what}")


def projected(client: redis.Redis, keys: Keys, customer_id: int) -> dict[str, Any] | None:
    """The 200 body the read side would serve for this customer, read as the read side does."""
    generation = current_generation(client, keys)
    fields = client.hmget(keys.bucket(generation, customer_id), list(fields_of(customer_id)))
    return read_fields(customer_id, fields)


def all_projected(client: redis.Redis, keys: Keys) -> dict[int, dict[str, Any]]:
    generation = current_generation(client, keys)
    result: dict[int, dict[str, Any]] = {}
    for name in client.scan_iter(match=keys.bucket_pattern(generation), count=1000):
        bucket = keys.bucket_number(name, generation)
        assert bucket is not None, f"{name!r} is not one of this prefix's buckets"
        for customer_id, record, spent, orders in bucket_records(bucket, client.hgetall(name)):
            result[customer_id] = read_customer(customer_id, record, spent, orders)
    return result


def folded(service: CustomerService) -> dict[int, dict[str, Any]]:
    """Every customer's document from a plain in-memory fold of the stored events."""
    records = fold(customer_changes(notifications(service.recorder), set()))
    return {cid: read_customer(cid, *r.fields()) for cid, r in records.items()}


def applied_position(client: redis.Redis, keys: Keys) -> int:
    generation = current_generation(client, keys)
    return int(client.hget(keys.tracking(generation), "customers") or 0)
