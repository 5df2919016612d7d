"""Idempotency-Key: a retried or racing request appends once, durably, with its events."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime.container import Container
from runtime.http import build_app
from runtime.settings import Settings
from tests.conftest import small_pool
from tests.integration.test_write_api import WriteApi
from write_side.domain.customer import Customer
from write_side.domain.idempotency import IdempotencyRecord
from write_side.domain.ids import idempotency_stream_id
from write_side.idempotency import IdempotencyClaim


@pytest.fixture
def api(event_store_url: str) -> Iterator[WriteApi]:
    container = Container(Settings(EVENT_STORE_URL=small_pool(event_store_url)))
    key = container.write_service.issue_api_key("orders-service", "producer").key
    with TestClient(
        build_app(container, write=True, read=False), raise_server_exceptions=False
    ) as client:
        yield WriteApi(client, container.write_service, key)
    container.close()


def order_body(customer_id: int, amount: str = "9.99") -> dict[str, Any]:
    return {"customer_id": customer_id, "amount": amount}


def test_a_retry_with_the_same_key_and_body_returns_the_first_response_and_appends_once(
    api: WriteApi,
) -> None:
    customer_id = api.register()
    first = api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k-1"})
    head = api.head()
    retry = api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k-1"})
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert api.head() == head
    assert api.placed_orders() == 1


def test_the_same_json_with_other_spacing_and_key_order_is_the_same_request(
    api: WriteApi,
) -> None:
    customer_id = api.register()
    headers = api.auth(**{"Idempotency-Key": "k-1", "Content-Type": "application/json"})
    first = api.client.post(
        "/api/orders", content=f'{{"customer_id":{customer_id},"amount":"1.50"}}', headers=headers
    )
    retry = api.client.post(
        "/api/orders",
        content=f'{{ "amount": "1.50",  "customer_id": {customer_id} }}',
        headers=headers,
    )
    assert retry.json() == first.json()
    assert api.placed_orders() == 1


def test_the_same_key_with_a_different_body_is_refused(api: WriteApi) -> None:
    customer_id = api.register()
    api.post("/api/orders", order_body(customer_id, "1.00"), **{"Idempotency-Key": "k-1"})
    other = api.post("/api/orders", order_body(customer_id, "2.00"), **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert other.json() == {"detail": "Idempotency-Key was already used with a different request."}
    assert api.placed_orders() == 1


def test_the_same_key_on_another_endpoint_is_a_different_request(api: WriteApi) -> None:
    customer_id = api.register()
    api.post(f"/api/customers/{customer_id}/deactivate", **{"Idempotency-Key": "k-1"})
    other = api.post(f"/api/customers/{customer_id}/reactivate", **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422


def test_a_registration_retried_with_its_key_keeps_the_allocated_id(api: WriteApi) -> None:
    body = {"first_name": "Ann"}
    first = api.post("/api/customers", body, **{"Idempotency-Key": "signup-1"})
    retry = api.post("/api/customers", body, **{"Idempotency-Key": "signup-1"})
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    registered = api.service.recorder.select_notifications(
        1, 100, topics=[Customer.Registered.TOPIC]
    )
    assert len(registered) == 1


def test_a_replay_answers_the_position_of_the_guarded_event_not_of_the_record(
    api: WriteApi,
) -> None:
    customer_id = api.register()
    first = api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k-1"})
    # The record is stored after the order's event, in the same save.
    assert api.head() == first.json()["position"] + 1
    retry = api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k-1"})
    assert retry.json()["position"] == first.json()["position"]


def test_the_key_record_is_stored_with_the_events_it_guards(api: WriteApi) -> None:
    customer_id = api.register()
    api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k-1"})
    records = api.service.recorder.select_notifications(
        1, 100, topics=[IdempotencyRecord.Recorded.TOPIC]
    )
    assert len(records) == 1
    assert records[0].originator_id == idempotency_stream_id("orders-service", "k-1")


def test_a_failed_request_records_no_key_so_its_retry_runs_again(api: WriteApi) -> None:
    # The customer does not exist yet: 404, and the key is not used up.
    first = api.post("/api/orders", order_body(77), **{"Idempotency-Key": "k-1"})
    assert first.status_code == 404
    api.register(id=77)
    retry = api.post("/api/orders", order_body(77), **{"Idempotency-Key": "k-1"})
    assert retry.status_code == 201


def test_keys_are_scoped_to_the_caller(api: WriteApi) -> None:
    other_key = api.service.issue_api_key("billing", "producer").key
    customer_id = api.register()
    api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k-1"})
    other = api.post(
        "/api/orders",
        order_body(customer_id),
        Authorization=f"Token {other_key}",
        **{"Idempotency-Key": "k-1"},
    )
    assert other.status_code == 201
    assert api.placed_orders() == 2


@pytest.mark.parametrize("key", ["x" * 256, "   "])
def test_a_key_that_is_too_long_or_blank_is_refused(api: WriteApi, key: str) -> None:
    customer_id = api.register()
    response = api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert api.placed_orders() == 0


def test_a_key_of_255_characters_is_accepted(api: WriteApi) -> None:
    customer_id = api.register()
    response = api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k" * 255})
    assert response.status_code == 201


def test_a_retry_while_the_first_is_in_flight_is_a_conflict(api: WriteApi) -> None:
    customer_id = api.register()
    claim_in_flight = threading.Event()
    release = threading.Event()

    # A first request with key k-1 holds its claim until the retry has been answered.
    def first_request_in_flight() -> None:
        claim = IdempotencyClaim("orders-service", "k-1", "fingerprint of the first")
        with api.service._commands.in_flight.hold(claim):
            claim_in_flight.set()
            release.wait(timeout=10)

    with ThreadPoolExecutor(max_workers=1) as pool:
        holder = pool.submit(first_request_in_flight)
        assert claim_in_flight.wait(timeout=10)
        retry = api.post("/api/orders", order_body(customer_id), **{"Idempotency-Key": "k-1"})
        release.set()
        holder.result(timeout=10)
    assert retry.status_code == 409
    assert retry.json() == {"detail": "A request with this Idempotency-Key is still in progress."}
    assert api.placed_orders() == 0


def test_two_racing_requests_with_one_key_on_two_processes_append_once(
    event_store_url: str,
) -> None:
    # Two write services share one store, as two processes would; no in-process guard helps.
    containers = [Container(Settings(EVENT_STORE_URL=event_store_url)) for _ in range(2)]
    key = containers[0].write_service.issue_api_key("shop", "producer").key
    customer_id = containers[0].write_service.register_customer(None, {}).result["id"]
    clients = [
        TestClient(build_app(c, write=True, read=False), raise_server_exceptions=False)
        for c in containers
    ]
    start = threading.Barrier(8)

    def send(i: int) -> Any:
        start.wait()
        return clients[i % 2].post(
            "/api/orders",
            json=order_body(customer_id),
            headers={"Authorization": f"Token {key}", "Idempotency-Key": "race-1"},
        )

    try:
        # Eight copies of one request arrive at once, split over the two services.
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(send, range(8)))
        placed = containers[0].write_service.recorder.select_notifications(
            1, 100, topics=["customers.Order.Placed"]
        )
    finally:
        for client in clients:
            client.close()
        for container in containers:
            container.close()
    # One order was stored; every answer is either that first response or "in progress".
    assert len(placed) == 1
    successes = [r.json() for r in responses if r.status_code == 201]
    assert successes
    assert all(body == successes[0] for body in successes)
    assert {r.status_code for r in responses} <= {201, 409}
