"""The fold: a customer change + the current record -> the new record. Pure, no I/O.

This is the read model's meaning written once in Python. The audit replays with it and
the property test checks the projector's Lua script against it; the two must agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from contract.customer_document import PROFILE_FIELDS
from projections.customer_record import encode_record
from projections.event_decoding import (
    DEACTIVATED,
    LOGGED_IN,
    PROFILE_UPDATED,
    REACTIVATED,
    REGISTERED,
    CustomerChange,
)

EMPTY_PROFILE: tuple[str | None, ...] = (None,) * len(PROFILE_FIELDS)


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """What the read model holds for one customer."""

    customer_id: int
    position: int = 0  # the last applied event store position (the replay guard)
    active: bool = True
    date_joined: str | None = None
    last_login: str | None = None
    profile: tuple[str | None, ...] = EMPTY_PROFILE
    spent: int = 0  # cents
    orders: int = 0

    def fields(self) -> tuple[bytes, int, int]:
        """The customer's record, spent and orders, as the projector stores them."""
        record = encode_record(
            self.position, self.active, self.date_joined, self.last_login, self.profile
        )
        return record, self.spent, self.orders


def apply(record: CustomerRecord, change: CustomerChange) -> CustomerRecord:
    """The record after one change; a change at or below the record's position is a replay."""
    if change.position <= record.position:
        return record
    kind = change.kind
    updated = replace(
        record,
        position=change.position,
        spent=record.spent + change.spent,
        orders=record.orders + change.orders,
    )
    if kind == REGISTERED:
        joined, profile = change.value
        return replace(updated, active=True, date_joined=joined, profile=tuple(profile))
    if kind == PROFILE_UPDATED:
        profile = list(updated.profile)
        for index, value in change.value:
            profile[index] = value
        return replace(updated, profile=tuple(profile))
    if kind == LOGGED_IN:
        if updated.last_login is None or change.value > updated.last_login:
            return replace(updated, last_login=change.value)
        return updated
    if kind == DEACTIVATED:
        return replace(updated, active=False)
    if kind == REACTIVATED:
        return replace(updated, active=True)
    return updated  # orders, cancellations and refunds only move the totals


def fold(
    changes: Iterable[CustomerChange], records: dict[int, CustomerRecord] | None = None
) -> dict[int, CustomerRecord]:
    """Every customer's record after the changes, in order (records is updated in place)."""
    result = {} if records is None else records
    for change in changes:
        current = result.get(change.customer_id)
        if current is None:
            current = CustomerRecord(change.customer_id)
        result[change.customer_id] = apply(current, change)
    return result
