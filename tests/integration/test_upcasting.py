"""Events stored by version 1 still read and project, upcast to version 2.

Customer.Registered v1 had no `notes`; Order.Cancelled v1 stored `amount_removed` (what
the order still counted) instead of the order's amount and its refunds.
"""

from __future__ import annotations

import json
from decimal import Decimal

import redis
from eventsourcing.persistence import StoredEvent

from projections.audit import audit
from projections.projector import Projector
from projections.read_model import Keys
from runtime.settings import event_store_env
from tests.support.projection_helpers import projected
from write_side.application import CustomerService
from write_side.domain.customer import Customer
from write_side.domain.ids import customer_stream_id, order_stream_id
from write_side.domain.order import Order

# Exactly what version 1 wrote: no class_version in the state and no `notes` in the profile.
V1_REGISTERED_STATE = {
    "timestamp": {"_type_": "datetime_iso", "_data_": "2025-05-01T09:30:00+00:00"},
    "originator_topic": "customers.Customer",
    "customer_id": 7,
    "profile": {
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.com",
        "mobile_number": None,
        "national_code": None,
        "birth_date": "1990-02-28",
        "gender": "female",
    },
}


def test_a_stored_v1_registration_is_read_back_with_notes_unset(event_store_url: str) -> None:
    service = CustomerService(event_store_env(event_store_url))
    try:
        # A v1 event is written straight through the recorder, as an old release stored it.
        service.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=customer_stream_id(7),
                    originator_version=1,
                    topic="customers.Customer.Registered",
                    state=json.dumps(V1_REGISTERED_STATE).encode(),
                )
            ]
        )
        # Reading it through the repository upcasts it: notes is None, the rest intact.
        customer: object = service.repository.get(customer_stream_id(7))
        assert isinstance(customer, Customer)
        assert customer.profile["notes"] is None
        assert customer.profile["first_name"] == "Ann"
        assert customer.customer_id == 7
        assert customer.is_active
        # The upcast aggregate accepts new commands, stored as version 2 events.
        written = service.update_profile(7, {"notes": "moved from v1"})
        assert service.get_customer(7).profile["notes"] == "moved from v1"
        assert written.position == 2
    finally:
        service.close()


def test_new_registrations_are_stored_as_version_2(event_store_url: str) -> None:
    service = CustomerService(event_store_env(event_store_url))
    try:
        service.register_customer(3, {"first_name": "Bo"})
        stored = service.recorder.select_events(customer_stream_id(3))[0]
        state = json.loads(stored.state)
        assert state["class_version"] == 2
        assert state["profile"]["notes"] is None
    finally:
        service.close()


# Exactly what version 1 wrote for a cancellation after a refund of 2.50 on 10.00.
V1_CANCELLED_STATE = {
    "timestamp": {"_type_": "datetime_iso", "_data_": "2025-05-02T10:00:00+00:00"},
    "customer_id": 7,
    "amount_removed": {"_type_": "decimal_str", "_data_": "7.50"},
}


def test_a_stored_v1_cancellation_is_read_and_projected_as_before(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    service = CustomerService(event_store_env(event_store_url))
    try:
        service.register_customer(7, {"first_name": "Ann"})
        service.place_order(7, Decimal("10.00"), order_id="o-7")
        service.place_order(7, Decimal("4.00"), order_id="o-8")
        service.refund_order("o-7", Decimal("2.50"))
        # The cancellation as an old release stored it, after the order's two events.
        service.recorder.insert_events(
            [
                StoredEvent(
                    originator_id=order_stream_id("o-7"),
                    originator_version=3,
                    topic="customers.Order.Cancelled",
                    state=json.dumps(V1_CANCELLED_STATE).encode(),
                )
            ]
        )
        # The library reads it upcast: an order of what it removed, nothing refunded.
        stored = service.recorder.select_events(order_stream_id("o-7"))[-1]
        cancelled = service.mapper.to_domain_event(stored)
        assert isinstance(cancelled, Order.Cancelled)
        assert (cancelled.amount, cancelled.refunded) == (Decimal("7.50"), Decimal("0.00"))
        order: object = service.repository.get(order_stream_id("o-7"))
        assert isinstance(order, Order)
        assert order.is_cancelled
        # Projected, it removes what the order still counted, exactly as version 1 did;
        # the audit's independent fold agrees.
        Projector(service.recorder, client, keys).catch_up()
        document = projected(client, keys, 7)
        assert document is not None
        assert (document["total_spent"], document["total_orders"]) == ("4.00", 1)
        assert audit(service.recorder, client, keys).clean
    finally:
        service.close()


def test_new_cancellations_are_stored_as_version_2_with_the_facts(event_store_url: str) -> None:
    service = CustomerService(event_store_env(event_store_url))
    try:
        service.register_customer(3, {"first_name": "Bo"})
        service.place_order(3, Decimal("10.00"), order_id="o-3")
        service.refund_order("o-3", Decimal("1.25"))
        service.cancel_order("o-3")
        state = json.loads(service.recorder.select_events(order_stream_id("o-3"))[-1].state)
        assert state["class_version"] == 2
        assert state["amount"] == {"_type_": "decimal_str", "_data_": "10.00"}
        assert state["refunded"] == {"_type_": "decimal_str", "_data_": "1.25"}
        assert "amount_removed" not in state
    finally:
        service.close()
