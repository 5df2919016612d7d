"""IdempotencyRecord: the first result of a keyed request, saved with the events it guards."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from write_side.domain.ids import idempotency_stream_id


class IdempotencyRecord(Aggregate):
    """One per (caller, key); the request's fingerprint and the result it got."""

    TOPIC = "customers.IdempotencyRecord"

    class Created(Aggregate.Created):
        TOPIC = "customers.IdempotencyRecord.Created"

    class Recorded(Created):
        TOPIC = "customers.IdempotencyRecord.Recorded"
        class_version = 1
        scope: str
        key: str
        fingerprint: str
        result: dict[str, Any]

    @staticmethod
    def create_id(scope: str, key: str, **_: Any) -> UUID:
        return idempotency_stream_id(scope, key)

    @event(Recorded)
    def __init__(self, scope: str, key: str, fingerprint: str, result: dict[str, Any]) -> None:
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.result = result
