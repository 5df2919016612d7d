"""The eventsourcing library as this project relies on it: an upgrade that changes it fails here.

Every domain event class goes through the library's mapper (its transcoder's wire format)
and back, and through the projector's own decoder of stored events; the adapter's SQL
runs against the library's tables on each store; the recorder methods the adapter
unwraps are still wrapped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.postgres import PostgresApplicationRecorder

from edge.access_policy import hash_key
from projections.event_decoding import CustomerChange, KeyChange, decode_row
from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.domain.api_key import ApiKey
from write_side.domain.customer import Customer
from write_side.domain.idempotency import IdempotencyRecord
from write_side.domain.order import Order
from write_side.store_adapter.queries import (
    customer_id_needles,
    notifications_of_customer,
    position_of,
    topics_after,
)

CUSTOMER_ID = 7
KEY_HASH = hash_key("a key")
AT = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)
AGGREGATES: tuple[type[Aggregate], ...] = (Customer, Order, ApiKey, IdempotencyRecord)


def event_classes() -> set[type]:
    """Every event class the domain's aggregates declare, but for the bases of others."""
    return {
        value
        for aggregate in AGGREGATES
        for value in vars(aggregate).values()
        if isinstance(value, type)
        and issubclass(value, Aggregate.Event)
        and not value.__subclasses__()
    }


def histories() -> list[Aggregate]:
    """One aggregate of each kind, taken through every event it has."""
    customer = Customer.register(CUSTOMER_ID, {"first_name": "Ann", "birth_date": "1990-02-28"})
    customer.update_profile({"email": "ann@example.com", "notes": None, "last_name": "Lee"})
    customer.record_login(AT)
    customer.deactivate()
    customer.reactivate()
    order = Order.place("o-1", CUSTOMER_ID, Decimal("12.34"), AT)
    order.refund(Decimal("1.05"))
    order.cancel()
    api_key = ApiKey(name="shop", role="producer", key_hash=KEY_HASH)
    api_key.revoke()
    record = IdempotencyRecord(scope="shop", key="k-1", fingerprint="f", result={"id": 7})
    return [customer, order, api_key, record]


@pytest.fixture
def service(event_store_url: str) -> Iterator[CustomerService]:
    service = CustomerService(event_store_env(event_store_url))
    yield service
    service.close()


def test_the_histories_cover_every_domain_event_class() -> None:
    events = [event for aggregate in histories() for event in aggregate.collect_events()]
    assert {type(event) for event in events} == event_classes()


def test_every_event_survives_the_mapper_and_the_projectors_decoder(
    service: CustomerService,
) -> None:
    for aggregate in histories():
        for event in aggregate.collect_events():
            stored = service.mapper.to_stored_event(event)
            assert stored.topic == type(event).TOPIC  # type: ignore[attr-defined]
            assert service.mapper.to_domain_event(stored) == event
            change = decode_row(1, stored.topic, stored.state)
            if isinstance(aggregate, Customer | Order):
                assert isinstance(change, CustomerChange)
                assert change.customer_id == CUSTOMER_ID
                # The adapter finds a customer's events by these bytes of the wire format.
                assert any(needle in stored.state for needle in customer_id_needles(CUSTOMER_ID))
            elif isinstance(aggregate, ApiKey):
                assert isinstance(change, KeyChange)
                assert change.key_hash == KEY_HASH
            else:
                assert change is None


def test_the_adapters_queries_read_the_librarys_tables(service: CustomerService) -> None:
    aggregates = histories()
    events = [event for aggregate in aggregates for event in aggregate.collect_events()]
    recordings = service.save(*events)
    recorder = service.recorder
    for recording in recordings:
        event = recording.domain_event
        position = position_of(recorder, event.originator_id, event.originator_version)
        assert position == recording.notification.id
    assert position_of(recorder, aggregates[0].id, 99) is None
    streams = [(aggregate.id, 1) for aggregate in aggregates]
    expected = sorted(
        (r.notification.originator_id, r.notification.originator_version, r.notification.topic)
        for r in recordings
        if r.notification.originator_version > 1
    )
    assert sorted(topics_after(recorder, streams)) == expected
    of_customer = [
        r.notification.id
        for r in recordings
        if r.notification.originator_id in (aggregates[0].id, aggregates[1].id)
    ]
    assert [n.id for n in notifications_of_customer(recorder, CUSTOMER_ID)] == of_customer


@pytest.mark.parametrize(
    "method", ["insert_events", "select_events", "select_notifications", "max_notification_id"]
)
def test_the_recorder_methods_the_adapter_unwraps_are_still_wrapped(method: str) -> None:
    # The library wraps them in its retry; the fail-fast recorder runs what is underneath.
    assert callable(getattr(PostgresApplicationRecorder, method).__wrapped__)
