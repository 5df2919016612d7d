"""Stored notifications -> the small, validated changes the read model is made of.

The projector decodes stored events itself (orjson on the stored state, stable topics,
the event classes' own upcasters) instead of rebuilding full domain event objects: it is
several times faster and it validates exactly what the read model relies on. Anything
that does not decode is rejected with a reason, never guessed at.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import orjson
from eventsourcing.persistence import Notification
from eventsourcing.utils import resolve_topic

from projections.read_model import PROFILE_FIELDS
from write_side.domain.api_key import ApiKey
from write_side.domain.customer import Customer
from write_side.domain.idempotency import IdempotencyRecord
from write_side.domain.order import Order

# Kinds of customer change (one letter each: they travel to the Lua script as JSON).
REGISTERED, PROFILE_UPDATED, LOGGED_IN = "R", "P", "L"
DEACTIVATED, REACTIVATED = "D", "A"
PLACED, CANCELLED, REFUNDED = "O", "C", "F"

PROFILE_INDEX = {name: index for index, name in enumerate(PROFILE_FIELDS)}
_PROFILE_NAMES = frozenset(PROFILE_FIELDS)
_TEXT_OR_NULL = frozenset({str, type(None)})
MAX_CUSTOMER_ID = 2**63 - 1


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


class _BadPayloadError(ValueError):
    pass


IGNORED_TOPICS = frozenset({IdempotencyRecord.Recorded.TOPIC})


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
            raise _BadPayloadError("the stored state is not a JSON object")
        stored_version = state.pop("class_version", 1)
        if stored_version != _VERSIONS[topic]:
            _upcast(topic, stored_version, state)
        return decoder(position, state)
    except (orjson.JSONDecodeError, _BadPayloadError, KeyError, TypeError, ValueError) as error:
        raise UnprojectableEventError(position, topic, _describe(error)) from None


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    if isinstance(error, orjson.JSONDecodeError):
        return "the stored state is not valid JSON"
    return str(error) or type(error).__name__


def _upcast(topic: str, stored: Any, state: dict[str, Any]) -> None:
    """Bring an older stored version up to the class's current version, as the library does."""
    event_class = _CLASSES[topic]
    current = _VERSIONS[topic]
    if type(stored) is not int or stored > current or stored < 1:
        raise _BadPayloadError(f"unsupported class_version {stored!r}")
    while stored < current:
        getattr(event_class, f"upcast_v{stored}_v{stored + 1}")(state)
        stored += 1


# Field readers: each raises _BadPayloadError naming the field.


def _customer_id(state: dict[str, Any]) -> int:
    value = state["customer_id"]
    if type(value) is not int or not 0 < value <= MAX_CUSTOMER_ID:
        raise _BadPayloadError(f"customer_id {value!r} is not a positive 64-bit integer")
    return value


def _time(state: dict[str, Any], name: str) -> str:
    """A stored datetime as UTC ISO 8601 with microseconds (string order is time order)."""
    value = state[name]
    if not isinstance(value, dict) or value.get("_type_") != "datetime_iso":
        raise _BadPayloadError(f"{name} is not a stored datetime")
    text = value.get("_data_")
    if not isinstance(text, str):
        raise _BadPayloadError(f"{name} is not a stored datetime")
    if len(text) == 32 and text.endswith("+00:00") and text[19] == ".":
        return text  # already canonical: the common case, kept fast
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _BadPayloadError(f"{name} {text!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise _BadPayloadError(f"{name} {text!r} has no timezone")
    return canonical_time(moment)


def canonical_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _cents(state: dict[str, Any], name: str) -> int:
    """A stored Decimal amount as exact integer cents; never through a float."""
    value = state[name]
    if not isinstance(value, dict) or value.get("_type_") != "decimal_str":
        raise _BadPayloadError(f"{name} is not a stored decimal")
    text = value.get("_data_")
    if not isinstance(text, str):
        raise _BadPayloadError(f"{name} is not a stored decimal")
    units, _, fraction = text.partition(".")
    if text.isascii() and units.isdigit() and len(fraction) == 2 and fraction.isdigit():
        return int(units) * 100 + int(fraction)  # the canonical "12.34": kept fast
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise _BadPayloadError(f"{name} {text!r} is not a decimal") from None
    cents = amount.scaleb(2)
    if not amount.is_finite() or cents != cents.to_integral_value() or amount < 0:
        raise _BadPayloadError(f"{name} {text!r} is not a non-negative amount in cents")
    return int(cents)


def _profile_value(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _BadPayloadError(f"profile field {name} is {type(value).__name__}, not a string")


def _profile(state: dict[str, Any], name: str) -> dict[str, Any]:
    value = state[name]
    if type(value) is not dict:
        raise _BadPayloadError(f"{name} is not an object")
    if not _PROFILE_NAMES.issuperset(value):
        unknown = set(value) - _PROFILE_NAMES
        raise _BadPayloadError(f"{name} has unknown fields {', '.join(sorted(unknown))}")
    return value


def _key_hash(state: dict[str, Any]) -> str:
    value = state["key_hash"]
    if not isinstance(value, str) or len(value) != 64:
        raise _BadPayloadError("key_hash is not a SHA-256 hex digest")
    return value


# One decoder per topic.


def _registered(position: int, state: dict[str, Any]) -> CustomerChange:
    profile = _profile(state, "profile")
    values = tuple(map(profile.get, PROFILE_FIELDS))
    if not _TEXT_OR_NULL.issuperset(map(type, values)):
        for name, value in zip(PROFILE_FIELDS, values, strict=True):
            _profile_value(name, value)  # raises, naming the field
    joined = _time(state, "timestamp")
    return CustomerChange(position, _customer_id(state), REGISTERED, value=(joined, values))


def _profile_updated(position: int, state: dict[str, Any]) -> CustomerChange:
    changes = _profile(state, "changes")
    updates = tuple(
        (PROFILE_INDEX[name], _profile_value(name, value)) for name, value in changes.items()
    )
    return CustomerChange(position, _customer_id(state), PROFILE_UPDATED, value=updates)


def _logged_in(position: int, state: dict[str, Any]) -> CustomerChange:
    return CustomerChange(position, _customer_id(state), LOGGED_IN, value=_time(state, "at"))


def _deactivated(position: int, state: dict[str, Any]) -> CustomerChange:
    return CustomerChange(position, _customer_id(state), DEACTIVATED)


def _reactivated(position: int, state: dict[str, Any]) -> CustomerChange:
    return CustomerChange(position, _customer_id(state), REACTIVATED)


def _placed(position: int, state: dict[str, Any]) -> CustomerChange:
    amount = _cents(state, "amount")
    return CustomerChange(position, _customer_id(state), PLACED, amount, 1)


def _cancelled(position: int, state: dict[str, Any]) -> CustomerChange:
    removed = _cents(state, "amount_removed")
    return CustomerChange(position, _customer_id(state), CANCELLED, -removed, -1)


def _refunded(position: int, state: dict[str, Any]) -> CustomerChange:
    refund = _cents(state, "amount")
    return CustomerChange(position, _customer_id(state), REFUNDED, -refund, 0)


def _issued(position: int, state: dict[str, Any]) -> KeyChange:
    role = state["role"]
    if not isinstance(role, str) or not role:
        raise _BadPayloadError("role is not a string")
    return KeyChange(position, _key_hash(state), role, False)


def _revoked(position: int, state: dict[str, Any]) -> KeyChange:
    return KeyChange(position, _key_hash(state), None, True)


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
        return _time(state, "timestamp") if isinstance(state, dict) else None
    except (orjson.JSONDecodeError, _BadPayloadError, KeyError):
        return None
