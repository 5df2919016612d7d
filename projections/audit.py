"""Independent replay of the event store, compared with the live read model.

The replay uses the pure fold, never Redis. The comparison is made at the position the
read model has recorded; a customer a live projector has already moved past that position
is compared at its own applied position (its guard), so an audit of a running system does
not report changes in flight as differences.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
from eventsourcing.persistence import ApplicationRecorder, Notification

from projections.customer_view import CustomerRecord, apply, fold
from projections.events import (
    CustomerChange,
    KeyChange,
    UnprojectableEventError,
    canonical_time,
    decode,
    event_time,
)
from projections.projector import APPLICATION_NAME, current_generation
from projections.read_model import Keys, applied_position, customer_document

PAGE = 5000

LiveFields = tuple[bytes, bytes | int, bytes | int]  # a customer hash's d, s, o


@dataclass(frozen=True)
class Difference:
    customer_id: int
    field: str
    expected: Any  # from the event store
    actual: Any  # in Redis


@dataclass
class AuditReport:
    generation: int
    position: int
    customers: int = 0
    differences: list[Difference] = field(default_factory=list)
    unprojectable: list[int] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences


def notifications(
    recorder: ApplicationRecorder, after: int = 0, upto: int | None = None
) -> Iterator[Notification]:
    """The notification log from after+1 to upto (inclusive), read in pages."""
    position = after
    while upto is None or position < upto:
        page = recorder.select_notifications(position + 1, PAGE, stop=upto)
        yield from page
        if len(page) < PAGE:
            return
        position = page[-1].id


def customer_changes(
    stream: Iterator[Notification], skips: set[int], unprojectable: list[int] | None = None
) -> Iterator[CustomerChange]:
    """Customer changes only; skipped and unprojectable events are left out (and listed)."""
    for notification in stream:
        if notification.id in skips:
            continue
        try:
            change = decode(notification)
        except UnprojectableEventError:
            if unprojectable is not None:
                unprojectable.append(notification.id)
            continue
        if type(change) is CustomerChange:
            yield change


def skipped_positions(client: redis.Redis, keys: Keys) -> set[int]:
    return {int(position) for position in client.hkeys(keys.skips)}


def audit(
    recorder: ApplicationRecorder,
    client: redis.Redis,
    keys: Keys,
    customer_id: int | None = None,
    application_name: str = APPLICATION_NAME,
) -> AuditReport:
    """Compare every customer (or one) in the live read model with a replay of the store."""
    generation = current_generation(client, keys)
    position = int(client.hget(keys.tracking(generation), application_name) or 0)
    skips = skipped_positions(client, keys)
    report = AuditReport(generation, position)

    changes = customer_changes(notifications(recorder, 0, position), skips, report.unprojectable)
    if customer_id is not None:
        changes = (c for c in changes if c.customer_id == customer_id)
    expected = fold(changes)
    actual = dict(_live_records(client, keys, generation, customer_id))

    # Customers a live projector moved past `position`: replay each up to its own guard.
    ahead = {cid: applied_position(fields[0]) for cid, fields in actual.items()}
    ahead = {cid: guard for cid, guard in ahead.items() if guard > position}
    if ahead:
        for change in customer_changes(
            notifications(recorder, position, max(ahead.values())), skips
        ):
            guard = ahead.get(change.customer_id)
            if guard is not None and change.position <= guard:
                record = expected.get(change.customer_id) or CustomerRecord(change.customer_id)
                expected[change.customer_id] = apply(record, change)

    report.customers = len(set(expected) | set(actual))
    for cid in sorted(set(expected) | set(actual)):
        report.differences.extend(_compare(cid, expected.get(cid), actual.get(cid)))
    if customer_id is None:
        report.differences.extend(_compare_keys(recorder, client, keys, generation, position))
    return report


def _compare_keys(
    recorder: ApplicationRecorder, client: redis.Redis, keys: Keys, generation: int, upto: int
) -> list[Difference]:
    """The API key index against a replay; entries moved past `upto` are in flight."""
    expected = key_index(recorder, upto)
    actual: dict[str, tuple[str, bool]] = {}
    for name, value in client.hgetall(keys.api_keys(generation)).items():
        key_hash = name.decode() if isinstance(name, bytes) else str(name)
        entry_position, role, revoked = orjson.loads(value)
        if int(entry_position) > upto:
            expected.pop(key_hash, None)
            continue
        actual[key_hash] = (role, bool(revoked))
    return [
        Difference(0, f"api key {key_hash[:12]}", expected.get(key_hash), actual.get(key_hash))
        for key_hash in sorted(set(expected) | set(actual))
        if expected.get(key_hash) != actual.get(key_hash)
    ]


def _live_records(
    client: redis.Redis, keys: Keys, generation: int, customer_id: int | None
) -> Iterator[tuple[int, LiveFields]]:
    if customer_id is not None:
        names = [keys.customer(generation, customer_id).encode()]
    else:
        names = list(client.scan_iter(match=keys.customer_pattern(generation), count=2000))
    for start in range(0, len(names), 1000):
        batch = names[start : start + 1000]
        pipe = client.pipeline(transaction=False)
        for name in batch:
            pipe.hmget(name, "d", "s", "o")
        for name, values in zip(batch, pipe.execute(), strict=True):
            if values[0] is not None:
                yield int(name.rsplit(b":", 1)[1]), (values[0], values[1] or 0, values[2] or 0)


def _compare(
    customer_id: int,
    expected: CustomerRecord | None,
    actual: LiveFields | None,
) -> list[Difference]:
    if expected is None:
        return [Difference(customer_id, "customer", "absent", "present")]
    if actual is None:
        return [Difference(customer_id, "customer", "present", "absent")]
    want = customer_document(customer_id, *expected.fields())
    have = customer_document(customer_id, *actual)
    differences = [
        Difference(customer_id, name, want[name], have.get(name))
        for name in want
        if want[name] != have.get(name)
    ]
    guard = applied_position(actual[0])
    if guard != expected.position:
        differences.append(Difference(customer_id, "applied position", expected.position, guard))
    return differences


def history(
    recorder: ApplicationRecorder,
    skips: set[int],
    *,
    customer_id: int | None = None,
    position: int | None = None,
    as_of: Any = None,
) -> dict[int, dict[str, Any]]:
    """The read model's documents as they were at a position or a moment (UTC datetime)."""
    moment = canonical_time(as_of) if as_of is not None else None
    stream: Iterator[Notification] = notifications(recorder, 0, position)
    if moment is not None:
        stream = (n for n in stream if (event_time(n) or "") <= moment)
    changes = customer_changes(stream, skips)
    if customer_id is not None:
        changes = (c for c in changes if c.customer_id == customer_id)
    records = fold(changes)
    return {
        cid: customer_document(cid, *record.fields()) for cid, record in sorted(records.items())
    }


def key_index(recorder: ApplicationRecorder, upto: int) -> dict[str, tuple[str, bool]]:
    """API key hash -> (role, revoked) from a replay (for checking the key index)."""
    index: dict[str, tuple[str, bool]] = {}
    for notification in notifications(recorder, 0, upto):
        try:
            change = decode(notification)
        except UnprojectableEventError:
            continue
        if isinstance(change, KeyChange):
            role = change.role if change.role is not None else index.get(change.key_hash, ("",))[0]
            index[change.key_hash] = (role, change.revoked)
    return index


def dumps(document: dict[str, Any]) -> str:
    return orjson.dumps(document).decode()
