"""Idempotency-Key: a request's fingerprint, one claim in flight per key, the stored record."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from write_side.domain.idempotency import IdempotencyRecord
from write_side.errors import IdempotencyKeyInFlightError, IdempotencyKeyReusedError

# Where a record keeps the position of the events it guards: in its stored result, beside
# the reply (the stored format of every record so far), and never in a reply.
_GUARDED_STREAM = "_guarded_stream"
_GUARDED_VERSION = "_guarded_version"


@dataclass(frozen=True)
class IdempotencyClaim:
    """A caller's Idempotency-Key and the fingerprint of the request that carries it."""

    scope: str
    key: str
    fingerprint: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    """A request's identity: method, path and canonical JSON body (spacing, key order aside)."""
    try:
        canonical = json.dumps(
            json.loads(body or b"null", parse_float=Decimal), sort_keys=True, default=str
        )
    except ValueError:
        canonical = body.hex()
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


class ClaimsInFlight:
    """The claims this process is running a command for; the same claim twice is refused."""

    def __init__(self) -> None:
        self._held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, claim: IdempotencyClaim | None) -> Iterator[None]:
        """Hold `claim` while the block runs; IdempotencyKeyInFlightError if it is held."""
        if claim is None:
            yield
            return
        token = (claim.scope, claim.key)
        with self._lock:
            if token in self._held:
                raise IdempotencyKeyInFlightError(claim.key)
            self._held.add(token)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(token)


def new_record(
    claim: IdempotencyClaim, reply: dict[str, Any], guarded: Aggregate
) -> IdempotencyRecord:
    """The record of a claim's first reply, pointing at the last event of `guarded`."""
    return IdempotencyRecord(
        scope=claim.scope,
        key=claim.key,
        fingerprint=claim.fingerprint,
        result={**reply, _GUARDED_STREAM: guarded.id.hex, _GUARDED_VERSION: guarded.version},
    )


def replayed(
    record: IdempotencyRecord, claim: IdempotencyClaim
) -> tuple[dict[str, Any], UUID, int]:
    """The first reply, and the stream and version of the last event the record guards.

    Raises IdempotencyKeyReusedError if the claim's request is not the one recorded.
    """
    if record.fingerprint != claim.fingerprint:
        raise IdempotencyKeyReusedError(claim.key)
    reply = dict(record.result)
    stream = UUID(hex=reply.pop(_GUARDED_STREAM))
    version = int(reply.pop(_GUARDED_VERSION))
    return reply, stream, version
