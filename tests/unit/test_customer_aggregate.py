"""Customer invariants, without any store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from write_side.domain.customer import (
    ACTIVE_AFTER,
    PROFILE_FIELDS,
    Customer,
    CustomerAlreadyActiveError,
    CustomerInactiveError,
    UnknownProfileFieldError,
)
from write_side.domain.ids import customer_stream_id


def test_a_registered_customer_is_active_with_every_profile_field_present() -> None:
    customer = Customer.register(5, {"first_name": "Ann"})
    assert customer.id == customer_stream_id(5)
    assert customer.is_active
    assert list(customer.profile) == list(PROFILE_FIELDS)
    assert customer.profile["first_name"] == "Ann"
    assert customer.profile["notes"] is None
    (registered,) = customer.collect_events()
    assert isinstance(registered, Customer.Registered)
    assert registered.profile == customer.profile


def test_registration_with_an_unknown_profile_field_is_refused() -> None:
    with pytest.raises(UnknownProfileFieldError):
        Customer.register(5, {"nickname": "Al"})


def test_a_profile_update_records_only_what_changes() -> None:
    customer = Customer.register(5, {"first_name": "Ann", "last_name": "Lee"})
    customer.collect_events()
    customer.update_profile({"first_name": "Ann", "last_name": None, "email": "a@b.co"})
    (updated,) = customer.collect_events()
    assert isinstance(updated, Customer.ProfileUpdated)
    assert updated.changes == {"last_name": None, "email": "a@b.co"}
    assert customer.profile["last_name"] is None


def test_a_profile_update_that_changes_nothing_records_nothing() -> None:
    customer = Customer.register(5, {"first_name": "Ann"})
    customer.collect_events()
    customer.update_profile({"first_name": "Ann"})
    assert customer.collect_events() == []


def test_a_profile_update_of_an_unknown_field_is_refused() -> None:
    customer = Customer.register(5, {})
    with pytest.raises(UnknownProfileFieldError):
        customer.update_profile({"shoe_size": "42"})


def test_the_latest_login_is_kept_whatever_order_logins_arrive_in() -> None:
    customer = Customer.register(5, {})
    later = datetime(2026, 5, 2, tzinfo=UTC)
    earlier = datetime(2026, 5, 1, tzinfo=UTC)
    customer.record_login(later)
    customer.record_login(earlier)
    assert customer.last_login == later


def test_a_deactivated_customer_fails_the_active_check() -> None:
    customer = Customer.register(5, {})
    customer.deactivate()
    assert not customer.is_active
    with pytest.raises(CustomerInactiveError):
        customer.check_is_active()


def test_deactivating_twice_is_refused() -> None:
    customer = Customer.register(5, {})
    customer.deactivate()
    with pytest.raises(CustomerInactiveError):
        customer.deactivate()


def test_reactivating_an_active_customer_is_refused() -> None:
    customer = Customer.register(5, {})
    with pytest.raises(CustomerAlreadyActiveError):
        customer.reactivate()


def test_a_reactivated_customer_is_active_again() -> None:
    customer = Customer.register(5, {})
    customer.deactivate()
    customer.reactivate()
    customer.check_is_active()
    assert customer.is_active


@pytest.mark.parametrize(
    "commands",
    [
        [],
        ["deactivate"],
        ["deactivate", "reactivate"],
        ["login", "deactivate", "update", "reactivate", "login", "deactivate"],
        ["update", "login", "login"],
    ],
)
def test_the_status_told_by_event_topics_matches_the_aggregate(commands: list[str]) -> None:
    customer = Customer.register(5, {})
    for command in commands:
        if command == "deactivate":
            customer.deactivate()
        elif command == "reactivate":
            customer.reactivate()
        elif command == "login":
            customer.record_login(datetime(2026, 1, 1, tzinfo=UTC))
        else:
            customer.update_profile({"notes": command + str(len(customer.pending_events))})
    active: bool | None = None
    for event in customer.collect_events():
        active = ACTIVE_AFTER.get(type(event).TOPIC, active)  # type: ignore[attr-defined]
    assert active is customer.is_active
