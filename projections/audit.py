"""Independent replay of the event store, compared with the live read model.

The replay uses the pure fold, never Redis. The comparison is made at the position the
read model has recorded; a customer a live projector has already moved past that position
is compared at its own applied position (its guard), so an audit of a running system does
not report changes in flight as differences.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from eventsourcing.persistence import ApplicationRecorder, Notification

from contract.application import APPLICATION_NAME
from projections.customer_record import (
    FIRST_CHUNK,
    MAX_CHUNKS,
    applied_position,
    bucket_records,
    fields_of,
    read_customer,
    record_of,
)
from projections.customer_view import CustomerRecord, apply, fold
from projections.dead_letters import skipped_positions
from projections.generation import current_generation
from projections.read_model import Keys
from projections.redis_client import RedisClient
from projections.replay import PAGE, customer_changes, key_index, notifications
from write_side.store_adapter.queries import notifications_of_customer

LiveFields = tuple[bytes, bytes | int, bytes | int]  # a customer's record, spent, orders


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

    differences_found: int = 0  # all of them; `differences` keeps the first MAX_DIFFERENCES

    @property
    def clean(self) -> bool:
        return self.differences_found == 0

    def add(self, differences: list[Difference]) -> None:
        self.differences_found += len(differences)
        room = MAX_DIFFERENCES - len(self.differences)
        self.differences.extend(differences[: max(room, 0)])

    def as_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "generation": self.generation,
            "position": self.position,
            "customers": self.customers,
            "differences_found": self.differences_found,
            "differences": [
                {
                    "customer_id": d.customer_id,
                    "field": d.field,
                    "event_store": d.expected,
                    "read_model": d.actual,
                }
                for d in self.differences
            ],
            "unprojectable": self.unprojectable,
        }


# Customers folded in memory at once; a larger store is audited in several passes over
# the log, each for a share of the customers, so memory stays bounded whatever its size.
MAX_CUSTOMERS_PER_PASS = 200_000
MAX_DIFFERENCES = 10_000  # kept for the report; beyond that only counted

Progress = Callable[[int, int, int, int], None]  # (pass, passes, position, upto)


def audit(
    recorder: ApplicationRecorder,
    client: RedisClient,
    keys: Keys,
    customer_id: int | None = None,
    application_name: str = APPLICATION_NAME,
    *,
    max_customers: int = MAX_CUSTOMERS_PER_PASS,
    progress: Progress | None = None,
) -> AuditReport:
    """Compare every customer (or one) in the live read model with a replay of the store."""
    generation = current_generation(client, keys)
    position = int(client.hget(keys.tracking(generation), application_name) or 0)
    skips = skipped_positions(client, keys)
    report = AuditReport(generation, position)
    if customer_id is not None:
        _audit_one(recorder, client, keys, report, skips, customer_id)
        return report
    live = _count_live(client, keys, generation)
    passes = max(1, -(-live // max_customers))
    for share in range(passes):

        def mine(cid: int, share: int = share) -> bool:
            if customer_id is not None:
                return cid == customer_id
            return cid % passes == share

        _audit_share(recorder, client, keys, report, skips, mine, share, passes, progress)
    if customer_id is None:
        report.add(_compare_keys(recorder, client, keys, generation, position))
    return report


def _audit_share(
    recorder: ApplicationRecorder,
    client: RedisClient,
    keys: Keys,
    report: AuditReport,
    skips: set[int],
    mine: Callable[[int], bool],
    share: int,
    passes: int,
    progress: Progress | None,
) -> None:
    position = report.position
    unprojectable = report.unprojectable if share == 0 else None
    stream = notifications(recorder, 0, position)
    if progress is not None:
        stream = _reporting(stream, lambda at: progress(share + 1, passes, at, position))
    changes = (c for c in customer_changes(stream, skips, unprojectable) if mine(c.customer_id))
    expected = fold(changes)
    actual = {cid: fields for cid, fields in _live_records(client, keys, report.generation, mine)}

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

    customers = set(expected) | set(actual)
    report.customers += len(customers)
    for cid in sorted(customers):
        report.add(_compare(cid, expected.get(cid), actual.get(cid)))


def _audit_one(
    recorder: ApplicationRecorder,
    client: RedisClient,
    keys: Keys,
    report: AuditReport,
    skips: set[int],
    customer_id: int,
) -> None:
    """One customer from the events naming it alone, not the whole log."""
    bucket = keys.bucket(report.generation, customer_id)
    values: list[Any] = client.hmget(bucket, list(fields_of(customer_id)))
    record = record_of(values)
    live: LiveFields | None = None
    if record is not None:
        live = (record, values[MAX_CHUNKS] or 0, values[MAX_CHUNKS + 1] or 0)
    # Compared at the read model's position, or at the customer's own guard if a live
    # projector has moved it further.
    upto = report.position if live is None else max(report.position, applied_position(live[0]))
    mentions = (n for n in notifications_of_customer(recorder, customer_id) if n.id <= upto)
    changes = (
        c
        for c in customer_changes(mentions, skips, report.unprojectable)
        if c.customer_id == customer_id
    )
    expected = fold(changes).get(customer_id)
    report.customers = int(expected is not None or live is not None)
    if report.customers:
        report.add(_compare(customer_id, expected, live))


def _reporting(
    stream: Iterator[Notification], report: Callable[[int], None]
) -> Iterator[Notification]:
    last = 0
    for count, notification in enumerate(stream, start=1):
        if count % PAGE == 0:
            report(notification.id)
        last = notification.id
        yield notification
    report(last)


def _count_live(client: RedisClient, keys: Keys, generation: int) -> int:
    """How many customers the generation holds (their first chunk fields, counted)."""
    names = [
        name
        for name in client.scan_iter(match=keys.bucket_pattern(generation), count=5000)
        if keys.bucket_number(name, generation) is not None
    ]
    count = 0
    for start in range(0, len(names), 1000):
        pipe = client.pipeline(transaction=False)
        for name in names[start : start + 1000]:
            pipe.hkeys(name)
        for fields in pipe.execute():
            count += sum(1 for field in fields if field.endswith(FIRST_CHUNK))
    return count


def _compare_keys(
    recorder: ApplicationRecorder, client: RedisClient, keys: Keys, generation: int, upto: int
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
    client: RedisClient, keys: Keys, generation: int, mine: Callable[[int], bool]
) -> Iterator[tuple[int, LiveFields]]:
    """The customers of this share, their buckets read in pipelined batches as the scan goes."""
    batch: list[tuple[int, bytes]] = []
    for name in client.scan_iter(match=keys.bucket_pattern(generation), count=2000):
        bucket = keys.bucket_number(name, generation)
        if bucket is not None:
            batch.append((bucket, name))
        if len(batch) >= 200:
            yield from _read_buckets(client, batch, mine)
            batch = []
    yield from _read_buckets(client, batch, mine)


def _read_buckets(
    client: RedisClient, buckets: list[tuple[int, bytes]], mine: Callable[[int], bool]
) -> Iterator[tuple[int, LiveFields]]:
    if not buckets:
        return
    pipe = client.pipeline(transaction=False)
    for _, name in buckets:
        pipe.hgetall(name)
    for (bucket, _), fields in zip(buckets, pipe.execute(), strict=True):
        for customer_id, record, spent, orders in bucket_records(bucket, fields):
            if mine(customer_id):
                yield customer_id, (record, spent, orders)


def _compare(
    customer_id: int,
    expected: CustomerRecord | None,
    actual: LiveFields | None,
) -> list[Difference]:
    if expected is None:
        return [Difference(customer_id, "customer", "absent", "present")]
    if actual is None:
        return [Difference(customer_id, "customer", "present", "absent")]
    want = read_customer(customer_id, *expected.fields())
    have = read_customer(customer_id, *actual)
    differences = [
        Difference(customer_id, name, want[name], have.get(name))
        for name in want
        if want[name] != have.get(name)
    ]
    guard = applied_position(actual[0])
    if guard != expected.position:
        differences.append(Difference(customer_id, "applied position", expected.position, guard))
    return differences
