"""The application's refusals; the aggregates' own invariant errors live with them."""

from __future__ import annotations


class WriteError(Exception):
    """Base class for application-level refusals (domain errors live with aggregates)."""


class CustomerNotFoundError(WriteError):
    """No customer has this id."""


class CustomerAlreadyRegisteredError(WriteError):
    """A customer with this id is registered already."""


class OrderNotFoundError(WriteError):
    """No order has this id."""


class OrderIdTakenError(WriteError):
    """An order with this id exists already."""


class ApiKeyNotFoundError(WriteError):
    """No API key has this name."""


class ApiKeyNameTakenError(WriteError):
    """An API key with this name exists already (names are never reused)."""


class IdempotencyKeyReusedError(WriteError):
    """The Idempotency-Key was first used with a different request."""


class IdempotencyKeyInFlightError(WriteError):
    """A request with this Idempotency-Key is still being processed."""


class ConcurrentUpdateError(WriteError):
    """The command kept losing races against concurrent writers."""
