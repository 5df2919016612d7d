"""A Customer.Registered stored by version 1 (no `notes`) still reads, upcast to version 2."""

from __future__ import annotations

import json

from eventsourcing.persistence import StoredEvent

from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.domain.customer import Customer
from write_side.domain.ids import customer_stream_id

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
