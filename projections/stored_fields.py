"""A stored event's fields read exactly: ids, times in UTC, amounts in cents, profiles.

Each reader takes the state as the library's JSON transcoder stored it (a Decimal or a
datetime is {"_type_": ..., "_data_": text}) and raises BadPayloadError naming the
field when it is not what the read model relies on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from contract.customer_document import PROFILE_FIELDS
from edge.ids import MAX_CUSTOMER_ID

_PROFILE_NAMES = frozenset(PROFILE_FIELDS)


class BadPayloadError(ValueError):
    """A field is missing its stored form or out of what the read model takes."""


def read_customer_id(state: dict[str, Any]) -> int:
    value = state["customer_id"]
    if type(value) is not int or not 0 < value <= MAX_CUSTOMER_ID:
        raise BadPayloadError(f"customer_id {value!r} is not a positive 64-bit integer")
    return value


def tagged_text(state: dict[str, Any], name: str, tag: str, kind: str) -> str:
    """The text of a value the library's transcoder stored as {"_type_": tag, "_data_": text}."""
    value = state[name]
    text = value.get("_data_") if isinstance(value, dict) and value.get("_type_") == tag else None
    if not isinstance(text, str):
        raise BadPayloadError(f"{name} is not a stored {kind}")
    return text


def read_time(state: dict[str, Any], name: str) -> str:
    """A stored datetime as UTC ISO 8601 with microseconds (string order is time order)."""
    text = tagged_text(state, name, "datetime_iso", "datetime")
    if len(text) == 32 and text.endswith("+00:00") and text[19] == ".":
        return text  # already canonical: the common case, kept fast
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadPayloadError(f"{name} {text!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise BadPayloadError(f"{name} {text!r} has no timezone")
    return canonical_time(moment)


def canonical_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def read_cents(state: dict[str, Any], name: str) -> int:
    """A stored Decimal amount as exact integer cents; never through a float."""
    text = tagged_text(state, name, "decimal_str", "decimal")
    units, _, fraction = text.partition(".")
    if text.isascii() and units.isdigit() and len(fraction) == 2 and fraction.isdigit():
        return int(units) * 100 + int(fraction)  # the canonical "12.34": kept fast
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise BadPayloadError(f"{name} {text!r} is not a decimal") from None
    cents = amount.scaleb(2)
    if not amount.is_finite() or cents != cents.to_integral_value() or amount < 0:
        raise BadPayloadError(f"{name} {text!r} is not a non-negative amount in cents")
    return int(cents)


def check_profile_value(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise BadPayloadError(f"profile field {name} is {type(value).__name__}, not a string")


def read_profile(state: dict[str, Any], name: str) -> dict[str, Any]:
    value = state[name]
    if type(value) is not dict:
        raise BadPayloadError(f"{name} is not an object")
    if not _PROFILE_NAMES.issuperset(value):
        unknown = set(value) - _PROFILE_NAMES
        raise BadPayloadError(f"{name} has unknown fields {', '.join(sorted(unknown))}")
    return value


def read_key_hash(state: dict[str, Any]) -> str:
    value = state["key_hash"]
    if not isinstance(value, str) or len(value) != 64:
        raise BadPayloadError("key_hash is not a SHA-256 hex digest")
    return value
