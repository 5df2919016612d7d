"""Customer: a registered person whose profile, logins and status are event-sourced."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contract.customer_document import PROFILE_FIELDS
from write_side.domain.ids import customer_stream_id

Profile = dict[str, str | None]


class Customer(Aggregate):
    """A customer, identified by a positive integer id."""

    TOPIC = "customers.Customer"

    class Created(Aggregate.Created):
        TOPIC = "customers.Customer.Created"

    class Registered(Created):
        """v2 added `notes`; stored v1 events are upcast with notes unset."""

        TOPIC = "customers.Customer.Registered"
        class_version = 2
        customer_id: int
        profile: Profile

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["profile"] = {**state["profile"], "notes": None}

    class ProfileUpdated(Aggregate.Event):
        TOPIC = "customers.Customer.ProfileUpdated"
        class_version = 1
        customer_id: int
        changes: Profile

    class LoggedIn(Aggregate.Event):
        TOPIC = "customers.Customer.LoggedIn"
        class_version = 1
        customer_id: int
        at: datetime

    class Deactivated(Aggregate.Event):
        TOPIC = "customers.Customer.Deactivated"
        class_version = 1
        customer_id: int

    class Reactivated(Aggregate.Event):
        TOPIC = "customers.Customer.Reactivated"
        class_version = 1
        customer_id: int

    @staticmethod
    def create_id(customer_id: int, **_: Any) -> UUID:
        return customer_stream_id(customer_id)

    @classmethod
    def register(cls, customer_id: int, profile: Profile) -> Customer:
        """A new customer; the Registered event carries every profile field, unset as None."""
        check_known_fields(profile)
        customer: Customer = cls(
            customer_id=customer_id,
            profile={name: profile.get(name) for name in PROFILE_FIELDS},
        )
        return customer

    @event(Registered)
    def __init__(self, customer_id: int, profile: Profile) -> None:
        self.customer_id = customer_id
        self.profile: Profile = {name: profile.get(name) for name in PROFILE_FIELDS}
        self.is_active = True
        self.last_login: datetime | None = None

    def update_profile(self, changes: Profile) -> None:
        check_known_fields(changes)
        effective = {k: v for k, v in changes.items() if self.profile.get(k) != v}
        if effective:
            self._profile_updated(self.customer_id, effective)

    @event(ProfileUpdated)
    def _profile_updated(self, customer_id: int, changes: Profile) -> None:
        self.profile.update(changes)

    def record_login(self, at: datetime) -> None:
        self._logged_in(self.customer_id, at)

    @event(LoggedIn)
    def _logged_in(self, customer_id: int, at: datetime) -> None:
        if self.last_login is None or at > self.last_login:
            self.last_login = at

    def deactivate(self) -> None:
        self.check_is_active()
        self._deactivated(self.customer_id)

    @event(Deactivated)
    def _deactivated(self, customer_id: int) -> None:
        self.is_active = False

    def reactivate(self) -> None:
        if self.is_active:
            raise CustomerAlreadyActiveError(self.customer_id)
        self._reactivated(self.customer_id)

    @event(Reactivated)
    def _reactivated(self, customer_id: int) -> None:
        self.is_active = True

    def check_is_active(self) -> None:
        if not self.is_active:
            raise CustomerInactiveError(self.customer_id)


# Whether a customer may order after each kind of event (by stable topic); events not
# listed leave it as it was. Lets the write side know a customer's status from the
# topics of its stream alone; kept equal to the aggregate's `is_active` by a test.
ACTIVE_AFTER: dict[str, bool] = {
    Customer.Registered.TOPIC: True,
    Customer.Deactivated.TOPIC: False,
    Customer.Reactivated.TOPIC: True,
}


def check_known_fields(profile: Profile) -> None:
    unknown = set(profile) - set(PROFILE_FIELDS)
    if unknown:
        raise UnknownProfileFieldError(", ".join(sorted(unknown)))


class CustomerError(Exception):
    """Base class for customer invariant violations."""


class CustomerInactiveError(CustomerError):
    """The customer is deactivated."""


class CustomerAlreadyActiveError(CustomerError):
    """The customer is active already."""


class UnknownProfileFieldError(CustomerError):
    """A profile change names a field customers do not have."""
