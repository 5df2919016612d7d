"""The customer document the read API serves: its fields, their order, when a profile is complete.

The one home of these facts. The domain's profile, the projection's record and its Lua
script, the audit's fold, the demo data and the read API's response model all derive from
the tables here; a profile field added to PROFILE (and typed in write_side/schemas.py, where
its format is validated) reaches every one of them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProfileField:
    name: str
    completes_profile: bool = True  # needed for is_profile_completed
    description: str | None = None
    pattern: str | None = None  # of the served text, for the OpenAPI document


# In the order the document lists them (the seed document's order).
PROFILE: tuple[ProfileField, ...] = (
    ProfileField("first_name"),
    ProfileField("last_name"),
    ProfileField("email"),
    ProfileField("mobile_number"),
    ProfileField("national_code"),
    ProfileField("birth_date", description="YYYY-MM-DD", pattern=r"^\d{4}-\d{2}-\d{2}$"),
    ProfileField("gender", description="male or female", pattern="^(male|female)$"),
    ProfileField("notes", completes_profile=False),
)
PROFILE_FIELDS: tuple[str, ...] = tuple(field.name for field in PROFILE)
COMPLETION_FIELDS: tuple[str, ...] = tuple(f.name for f in PROFILE if f.completes_profile)
_COMPLETING = operator.itemgetter(*(i for i, f in enumerate(PROFILE) if f.completes_profile))

# The whole document, in order: the id, the profile, then status, times and totals.
RESPONSE_FIELDS: tuple[str, ...] = (
    "id",
    *PROFILE_FIELDS,
    "is_active",
    "is_profile_completed",
    "date_joined",
    "last_login",
    "total_orders",
    "total_spent",
)


def is_profile_completed(profile: Sequence[str | None]) -> bool:
    """Whether every field that completes a profile is set (values in PROFILE order)."""
    return None not in _COMPLETING(profile)


def _document_display() -> Callable[..., dict[str, Any]]:
    """A function returning the document as one dict display, generated from the tables.

    It runs for every read: a display builds the dict at less than half the cost of
    `dict(zip(RESPONSE_FIELDS, values))`. It is generated (as dataclasses generate their
    `__init__`), so the tables above stay the one place that lists the fields.
    """
    profile = {name: f"profile[{index}]" for index, name in enumerate(PROFILE_FIELDS)}
    completed = " and ".join(f"{profile[name]} is not None" for name in COMPLETION_FIELDS)
    values = {
        "id": "customer_id",
        **profile,
        "is_active": "active",
        "is_profile_completed": f"({completed or 'True'})",
        "date_joined": "date_joined",
        "last_login": "last_login",
        "total_orders": "total_orders",
        "total_spent": "total_spent",
    }
    if tuple(values) != RESPONSE_FIELDS:
        raise AssertionError("the document's values do not follow RESPONSE_FIELDS")
    arguments = "customer_id, profile, active, date_joined, last_login, total_orders, total_spent"
    display = ", ".join(f"{name!r}: {value}" for name, value in values.items())
    built: Callable[..., dict[str, Any]] = eval(f"lambda {arguments}: {{{display}}}")  # noqa: S307
    return built


_DOCUMENT = _document_display()


def customer_document(
    customer_id: int,
    profile: Sequence[str | None],
    active: bool,
    date_joined: str | None,
    last_login: str | None,
    total_orders: int,
    total_spent: str,
) -> dict[str, Any]:
    """The document, fields in RESPONSE_FIELDS order (profile values in PROFILE order)."""
    if len(profile) != len(PROFILE):
        raise ValueError(f"{len(profile)} profile values for {len(PROFILE)} fields")
    return _DOCUMENT(
        customer_id, profile, active, date_joined, last_login, total_orders, total_spent
    )
