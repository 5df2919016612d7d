"""Stored notifications -> the small, validated changes the read model is made of.

The projector decodes stored events itself (orjson on the stored state, stable topics,
the event classes' own upcasters) instead of rebuilding full domain event objects: it is
several times faster and it validates exactly what the read model relies on. Anything
that does not decode is rejected with a reason, never guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Notification,
    UUIDAsHex,
)
from eventsourcing.utils import resolve_topic

from contract.customer_document import PROFILE_FIELDS
from projections.stored_fields import (
    BadPayloadError,
    check_profile_value,
    read_cents,
    read_customer_id,
    read_key_hash,
    read_profile,
    read_time,
)
from write_side.domain.api_key import ApiKey
from write_side.domain.customer import Customer
from write_side.domain.idempotency import IdempotencyRecord
from write_side.domain.order import Order

# Kinds of customer change (one letter each: they travel to the Lua script as JSON).
REGISTERED, PROFILE_UPDATED, LOGGED_IN = "R", "P", "L"
DEACTIVATED, REACTIVATED = "D", "A"
PLACED, CANCELLED, REFUNDED = "O", "C", "F"

PROFILE_INDEX = {name: index for index, name in enumerate(PROFILE_FIELDS)}
_TEXT_OR_NULL = frozenset({str, type(None)})


class CustomerChange(NamedTuple):
    """One event's effect on one customer's record."""

    position: int
    customer_id: int
    kind: str
    spent: int = 0  # change of total spent, integer cents
    orders: int = 0  # change of total orders
    # REGISTERED: (date_joined, profile values in PROFILE_FIELDS order)
    # PROFILE_UPDATED: ((profile index, value), ...); LOGGED_IN: the login time
    value: Any = None


class KeyChange(NamedTuple):
    """One event's effect on the API key index."""

    position: int
    key_hash: str
    role: str | None  # None for a revocation
    revoked: bool


Change = CustomerChange | KeyChange


class UnprojectableEventError(Exception):
    """A stored event the read model cannot take: unknown topic or bad payload."""

    def __init__(self, position: int, topic: str, reason: str) -> None:
        super().__init__(f"event at position {position} ({topic}) cannot be projected: {reason}")
        self.position = position
        self.topic = topic
        self.reason = reason


IGNORED_TOPICS = frozenset({IdempotencyRecord.Recorded.TOPIC})

# The library's default transcoder, which the application stores events with. Upcasters
# run on the state it decodes, as in the library's mapper, so a Decimal or datetime an
# upcaster adds reaches the decoders below in the stored form.
_TRANSCODER = JSONTranscoder()
for _transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
    _TRANSCODER.register(_transcoding)


def decode(notification: Notification) -> Change | None:
    """The change a stored event makes to the read model; None for events it ignores."""
    return decode_row(notification.id, notification.topic, notification.state)


def decode_row(position: int, topic: str, stored_state: bytes) -> Change | None:
    """decode() for a bare (position, topic, state) row."""
    decoder = _DECODERS.get(topic)
    if decoder is None:
        if topic in IGNORED_TOPICS:
            return None
        raise UnprojectableEventError(position, topic, "unknown topic")
    try:
        state = orjson.loads(stored_state)
        if type(state) is not dict:
            raise BadPayloadError("the stored state is not a JSON object")
        stored_version = state.pop("class_version", 1)
        if stored_version != _VERSIONS[topic]:
            state = _upcast(topic, stored_version, stored_state)
        return decoder(position, state)
    except (orjson.JSONDecodeError, BadPayloadError, KeyError, TypeError, ValueError) as error:
        raise UnprojectableEventError(position, topic, _describe(error)) from None


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    if isinstance(error, orjson.JSONDecodeError):
        return "the stored state is not valid JSON"
    return str(error) or type(error).__name__


def _upcast(topic: str, stored: Any, stored_state: bytes) -> dict[str, Any]:
    """An older stored version's state brought up to the class's current version."""
    event_class = _CLASSES[topic]
    current = _VERSIONS[topic]
    if type(stored) is not int or stored > current or stored < 1:
        raise BadPayloadError(f"unsupported class_version {stored!r}")
    state = _TRANSCODER.decode(stored_state)
    state.pop("class_version", None)
    while stored < current:
        getattr(event_class, f"upcast_v{stored}_v{stored + 1}")(state)
        stored += 1
    upcast: dict[str, Any] = orjson.loads(_TRANSCODER.encode(state))
    return upcast


# One decoder per topic.


def _registered(position: int, state: dict[str, Any]) -> CustomerChange:
    profile = read_profile(state, "profile")
    values = tuple(map(profile.get, PROFILE_FIELDS))
    if not _TEXT_OR_NULL.issuperset(map(type, values)):
        for name, value in zip(PROFILE_FIELDS, values, strict=True):
            check_profile_value(name, value)  # raises, naming the field
    joined = read_time(state, "timestamp")
    return CustomerChange(position, read_customer_id(state), REGISTERED, value=(joined, values))


def _profile_updated(position: int, state: dict[str, Any]) -> CustomerChange:
    changes = read_profile(state, "changes")
    updates = tuple(
        (PROFILE_INDEX[name], check_profile_value(name, value)) for name, value in changes.items()
    )
    return CustomerChange(position, read_customer_id(state), PROFILE_UPDATED, value=updates)


def _logged_in(position: int, state: dict[str, Any]) -> CustomerChange:
    at = read_time(state, "at")
    return CustomerChange(position, read_customer_id(state), LOGGED_IN, value=at)


def _deactivated(position: int, state: dict[str, Any]) -> CustomerChange:
    return CustomerChange(position, read_customer_id(state), DEACTIVATED)


def _reactivated(position: int, state: dict[str, Any]) -> CustomerChange:
    return CustomerChange(position, read_customer_id(state), REACTIVATED)


# Total spent counts what customers paid and kept: an order adds its amount, a refund
# takes itself off and a cancellation what the order still counted after its refunds.


def spent_by_refund(refund: int) -> int:
    """The change a refund makes to total spent, in cents."""
    return -refund


def spent_by_cancel(amount: int, refunded: int) -> int:
    """The change cancelling an order makes to total spent, in cents."""
    return refunded - amount


def _placed(position: int, state: dict[str, Any]) -> CustomerChange:
    amount = read_cents(state, "amount")
    return CustomerChange(position, read_customer_id(state), PLACED, amount, 1)


def _cancelled(position: int, state: dict[str, Any]) -> CustomerChange:
    amount, refunded = read_cents(state, "amount"), read_cents(state, "refunded")
    if refunded > amount:
        raise BadPayloadError(f"refunded {refunded} cents, above the amount of {amount}")
    spent = spent_by_cancel(amount, refunded)
    return CustomerChange(position, read_customer_id(state), CANCELLED, spent, -1)


def _refunded(position: int, state: dict[str, Any]) -> CustomerChange:
    refund = read_cents(state, "amount")
    return CustomerChange(position, read_customer_id(state), REFUNDED, spent_by_refund(refund), 0)


def _issued(position: int, state: dict[str, Any]) -> KeyChange:
    role = state["role"]
    if not isinstance(role, str) or not role:
        raise BadPayloadError("role is not a string")
    return KeyChange(position, read_key_hash(state), role, False)


def _revoked(position: int, state: dict[str, Any]) -> KeyChange:
    return KeyChange(position, read_key_hash(state), None, True)


_DECODERS: dict[str, Callable[[int, dict[str, Any]], Change]] = {
    Customer.Registered.TOPIC: _registered,
    Customer.ProfileUpdated.TOPIC: _profile_updated,
    Customer.LoggedIn.TOPIC: _logged_in,
    Customer.Deactivated.TOPIC: _deactivated,
    Customer.Reactivated.TOPIC: _reactivated,
    Order.Placed.TOPIC: _placed,
    Order.Cancelled.TOPIC: _cancelled,
    Order.Refunded.TOPIC: _refunded,
    ApiKey.Issued.TOPIC: _issued,
    ApiKey.Revoked.TOPIC: _revoked,
}
# Resolved through the library's topic registry, so a renamed class keeps its stored topic.
_CLASSES: dict[str, type[Any]] = {topic: resolve_topic(topic) for topic in _DECODERS}
_VERSIONS: dict[str, int] = {
    topic: getattr(cls, "class_version", 1) for topic, cls in _CLASSES.items()
}


def event_time(notification: Notification) -> str | None:
    """When a stored event happened (canonical UTC text), for as-of queries; None if unknown."""
    try:
        state = orjson.loads(notification.state)
        return read_time(state, "timestamp") if isinstance(state, dict) else None
    except (orjson.JSONDecodeError, BadPayloadError, KeyError):
        return None
