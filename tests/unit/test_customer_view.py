"""The pure fold and the stored-event decoder: what each event means for the read model."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from eventsourcing.persistence import Notification

from contract.customer_document import PROFILE_FIELDS
from projections.customer_record import read_customer
from projections.customer_view import CustomerRecord, apply, fold
from projections.event_decoding import (
    CANCELLED,
    DEACTIVATED,
    LOGGED_IN,
    PLACED,
    PROFILE_UPDATED,
    REACTIVATED,
    REFUNDED,
    REGISTERED,
    CustomerChange,
    KeyChange,
    UnprojectableEventError,
    decode,
)
from write_side.domain.customer import PROFILE_FIELDS as DOMAIN_PROFILE_FIELDS

JOINED = "2026-01-02T03:04:05.000006+00:00"
PROFILE = ("Ada", "Lovelace", "ada@example.org", "+44 1234", "AB12", "1815-12-10", "female", None)


def registered(position: int = 1, customer_id: int = 7) -> CustomerChange:
    return CustomerChange(position, customer_id, REGISTERED, value=(JOINED, PROFILE))


def document(record: CustomerRecord) -> dict[str, Any]:
    return read_customer(record.customer_id, *record.fields())


def stored(position: int, topic: str, state: dict[str, Any]) -> Notification:
    return Notification(
        id=position,
        originator_id="00000000-0000-0000-0000-000000000001",
        originator_version=1,
        topic=topic,
        state=orjson.dumps(state),
    )


def at(text: str) -> dict[str, str]:
    return {"_type_": "datetime_iso", "_data_": text}


def money(text: str) -> dict[str, str]:
    return {"_type_": "decimal_str", "_data_": text}


def test_registration_sets_the_profile_the_join_date_and_active() -> None:
    body = document(fold([registered()])[7])
    assert body["first_name"] == "Ada"
    assert body["date_joined"] == JOINED
    assert body["is_active"] is True
    assert body["is_profile_completed"] is True
    assert body["total_orders"] == 0
    assert body["total_spent"] == "0.00"
    assert body["last_login"] is None


def test_profile_is_incomplete_while_any_required_field_is_null() -> None:
    cleared = CustomerChange(2, 7, PROFILE_UPDATED, value=((6, None),))  # gender
    assert document(fold([registered(), cleared])[7])["is_profile_completed"] is False


def test_notes_do_not_count_towards_a_completed_profile() -> None:
    noted = CustomerChange(2, 7, PROFILE_UPDATED, value=((7, "likes tea"),))
    body = document(fold([registered(), noted])[7])
    assert body["notes"] == "likes tea"
    assert body["is_profile_completed"] is True


def test_last_login_is_the_latest_whatever_the_arrival_order() -> None:
    late = CustomerChange(2, 7, LOGGED_IN, value="2026-03-01T00:00:00.000000+00:00")
    early = CustomerChange(3, 7, LOGGED_IN, value="2026-02-01T00:00:00.000000+00:00")
    assert document(fold([registered(), late, early])[7])["last_login"] == late.value


def test_deactivation_and_reactivation_toggle_is_active() -> None:
    off = CustomerChange(2, 7, DEACTIVATED)
    on = CustomerChange(3, 7, REACTIVATED)
    assert document(fold([registered(), off])[7])["is_active"] is False
    assert document(fold([registered(), off, on])[7])["is_active"] is True


def test_cancelled_order_is_removed_from_totals_net_of_its_refunds() -> None:
    changes = [
        registered(),
        CustomerChange(2, 7, PLACED, 1230, 1),
        CustomerChange(3, 7, PLACED, 10, 1),
        CustomerChange(4, 7, REFUNDED, -105, 0),
        CustomerChange(5, 7, CANCELLED, -(1230 - 105), -1),
    ]
    body = document(fold(changes)[7])
    assert body["total_orders"] == 1
    assert body["total_spent"] == "0.10"


def test_decoder_derives_what_a_cancellation_removes_from_the_amount_and_refunds() -> None:
    change = decode(
        stored(5, "customers.Order.Cancelled", {
            "timestamp": at(JOINED), "customer_id": 7, "amount": money("12.30"),
            "refunded": money("1.05"), "class_version": 2,
        })
    )  # fmt: skip
    assert change == CustomerChange(5, 7, CANCELLED, -(1230 - 105), -1)


def test_decoder_upcasts_a_stored_v1_cancellation_to_the_same_change() -> None:
    change = decode(
        stored(5, "customers.Order.Cancelled", {
            "timestamp": at(JOINED), "customer_id": 7, "amount_removed": money("11.25"),
        })
    )  # fmt: skip
    assert change == CustomerChange(5, 7, CANCELLED, -1125, -1)


def test_the_read_model_knows_exactly_the_profile_fields_customers_have() -> None:
    # The read model keeps its own copy (read_side must not import write_side); a field
    # added to customers but not here would stop the projection at its first event.
    assert PROFILE_FIELDS == DOMAIN_PROFILE_FIELDS


def test_replaying_a_change_at_or_below_the_guard_changes_nothing() -> None:
    record = fold([registered(), CustomerChange(2, 7, PLACED, 500, 1)])[7]
    assert apply(record, CustomerChange(2, 7, PLACED, 500, 1)) == record
    assert apply(record, registered()) == record


def test_decoder_reads_money_exactly_in_cents() -> None:
    change = decode(
        stored(3, "customers.Order.Placed", {
            "timestamp": at(JOINED), "order_id": "o1", "customer_id": 7,
            "amount": money("1000000000000.00"), "placed_at": at(JOINED),
        })
    )  # fmt: skip
    assert change == CustomerChange(3, 7, PLACED, 100_000_000_000_000, 1)


def test_decoder_normalises_login_times_to_utc_with_microseconds() -> None:
    change = decode(
        stored(4, "customers.Customer.LoggedIn", {
            "timestamp": at(JOINED), "customer_id": 7, "at": at("2026-01-01T03:30:00+03:30"),
        })
    )  # fmt: skip
    assert isinstance(change, CustomerChange)
    assert change.value == "2026-01-01T00:00:00.000000+00:00"


def test_decoder_upcasts_a_stored_v1_registration_with_notes_unset() -> None:
    change = decode(
        stored(1, "customers.Customer.Registered", {
            "timestamp": at(JOINED), "originator_topic": "customers.Customer",
            "customer_id": 7, "profile": {"first_name": "Ada"},
        })
    )  # fmt: skip
    assert isinstance(change, CustomerChange)
    assert change.value == (JOINED, ("Ada", None, None, None, None, None, None, None))


def test_decoder_ignores_idempotency_records() -> None:
    state = {"timestamp": at(JOINED), "scope": "s", "key": "k", "fingerprint": "f", "result": {}}
    assert decode(stored(5, "customers.IdempotencyRecord.Recorded", state)) is None


def test_decoder_reads_api_key_issue_and_revocation() -> None:
    key_hash = "a" * 64
    issued = decode(
        stored(6, "customers.ApiKey.Issued", {
            "timestamp": at(JOINED), "name": "n", "role": "staff", "key_hash": key_hash,
        })
    )  # fmt: skip
    revoked = decode(
        stored(7, "customers.ApiKey.Revoked", {"timestamp": at(JOINED), "key_hash": key_hash})
    )
    assert issued == KeyChange(6, key_hash, "staff", False)
    assert revoked == KeyChange(7, key_hash, None, True)


@pytest.mark.parametrize(
    ("topic", "state", "reason"),
    [
        ("customers.Martian.Landed", {}, "unknown topic"),
        ("customers.Order.Refunded", {"customer_id": 7, "amount": 12.5}, "not a stored decimal"),
        (
            "customers.Order.Refunded",
            {"customer_id": 7, "amount": money("0.001")},
            "not a non-negative amount in cents",
        ),
        (
            "customers.Order.Cancelled",
            {
                "customer_id": 7,
                "amount": money("1.00"),
                "refunded": money("2.00"),
                "class_version": 2,
            },
            "above the amount",
        ),
        (
            "customers.Order.Cancelled",
            {"customer_id": 7, "amount_removed": 1.5},
            "amount is not a stored decimal",
        ),
        ("customers.Customer.Deactivated", {"customer_id": "7"}, "not a positive 64-bit"),
        ("customers.Customer.Deactivated", {}, "missing field 'customer_id'"),
        (
            "customers.Customer.LoggedIn",
            {"customer_id": 7, "at": at("2026-01-01T00:00:00")},
            "has no timezone",
        ),
        (
            "customers.Customer.ProfileUpdated",
            {"customer_id": 7, "changes": {"shoe_size": "44"}},
            "unknown fields shoe_size",
        ),
    ],
)
def test_an_unprojectable_event_is_rejected_with_its_position_and_reason(
    topic: str, state: dict[str, Any], reason: str
) -> None:
    with pytest.raises(UnprojectableEventError) as rejected:
        decode(stored(9, topic, state))
    assert rejected.value.position == 9
    assert reason in rejected.value.reason


def test_state_that_is_not_json_is_rejected() -> None:
    notification = Notification(
        id=3,
        originator_id="00000000-0000-0000-0000-000000000001",
        originator_version=1,
        topic="customers.Customer.Deactivated",
        state=b"\x00garbage",
    )
    with pytest.raises(UnprojectableEventError, match="not valid JSON"):
        decode(notification)
