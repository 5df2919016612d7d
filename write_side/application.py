"""The write side's application service: one method per command, each returning a position."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError
from eventsourcing.utils import Environment

from write_side.domain.api_key import ApiKey, hash_key, new_secret_key
from write_side.domain.customer import Customer, CustomerInactiveError, Profile
from write_side.domain.idempotency import IdempotencyRecord
from write_side.domain.ids import (
    api_key_stream_id,
    customer_stream_id,
    idempotency_stream_id,
    order_stream_id,
)
from write_side.domain.order import Order
from write_side.store_adapter.options import libpq_options
from write_side.store_adapter.queries import position_of, topics_after
from write_side.store_adapter.recorder import with_connection_options
from write_side.throughput.customer_status import CustomerStatuses
from write_side.throughput.group_commit import GroupCommit

A = TypeVar("A", bound=Aggregate)

# Optimistic concurrency: a command that lost a race is decided again on fresh state.
MAX_ATTEMPTS = 50

API_KEY_TOPICS = (ApiKey.Issued.TOPIC, ApiKey.Revoked.TOPIC)


@dataclass(frozen=True)
class IdempotencyClaim:
    """A caller's Idempotency-Key and the fingerprint of the request that carries it."""

    scope: str
    key: str
    fingerprint: str


# Where a replayed Idempotency-Key finds the position of the events its record guards.
_GUARDED_STREAM = "_guarded_stream"
_GUARDED_VERSION = "_guarded_version"


@dataclass(frozen=True)
class Decision:
    """A command's outcome before saving: aggregates with new events, and the reply."""

    aggregates: Sequence[Aggregate]
    result: dict[str, Any]


@dataclass(frozen=True)
class Written:
    """What a command produced: its result, and the position of the last event it stored."""

    result: dict[str, Any]
    position: int
    replayed: bool = False


@dataclass(frozen=True)
class IssuedKey:
    name: str
    role: str
    key: str
    position: int


@dataclass(frozen=True)
class ApiKeyEntry:
    name: str
    role: str
    key_hash: str
    is_revoked: bool
    issued_at: datetime


class CustomerService(Application[UUID]):
    """Customers, orders and API keys, event-sourced in one store."""

    name = "customers"
    env = {"AGGREGATE_CACHE_MAXSIZE": "50000", "DEEPCOPY_FROM_AGGREGATE_CACHE": "y"}

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._ids = _CustomerIdAllocator(self._customer_exists)
        self._group_commit = GroupCommit(lambda events: self.save(*events))
        self._statuses = CustomerStatuses(lambda streams: topics_after(self.recorder, streams))
        self._in_flight: set[tuple[str, str]] = set()
        self._in_flight_lock = threading.Lock()

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        """The library's factory, with the libpq options of EVENT_STORE_URL (sslmode, ...)
        on every PostgreSQL connection; the library itself would drop them."""
        factory = super().construct_factory(env)
        with_connection_options(factory, libpq_options(env))
        return factory

    # Customers

    def register_customer(
        self, customer_id: int | None, profile: Profile, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(retrying: bool) -> Decision:
            if customer_id is None:
                new_id = self._ids.next_candidate()
            else:
                # A taken id shows up as a conflict on save; only then is it looked up.
                if retrying and self._customer_exists(customer_id):
                    raise CustomerAlreadyRegisteredError(customer_id)
                new_id = customer_id
            return Decision([Customer.register(new_id, profile)], {"id": new_id})

        def lost_race(result: dict[str, Any]) -> None:
            if customer_id is None:
                self._ids.taken(int(result["id"]))

        return self._write(decide, claim, on_conflict=lost_race)

    def update_profile(
        self, customer_id: int, changes: Profile, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.update_profile(changes)
            return Decision([customer], {"id": customer_id})

        return self._write(decide, claim)

    def record_login(
        self, customer_id: int, at: datetime | None, claim: IdempotencyClaim | None = None
    ) -> Written:
        when = at or datetime.now(UTC)

        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.record_login(when)
            return Decision([customer], {})

        return self._write(decide, claim)

    def deactivate_customer(
        self, customer_id: int, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.deactivate()
            return Decision([customer], {})

        return self._write(decide, claim)

    def reactivate_customer(
        self, customer_id: int, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.reactivate()
            return Decision([customer], {})

        return self._write(decide, claim)

    def get_customer(self, customer_id: int) -> Customer:
        return self._customer(customer_id)

    # Orders

    def place_order(
        self,
        customer_id: int,
        amount: Decimal,
        order_id: str | None = None,
        placed_at: datetime | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> Written:
        request = OrderRequest.new(customer_id, amount, order_id, placed_at)

        def decide(retrying: bool) -> Decision:
            # The customer is only read, as of after the request arrived (shared queries).
            _check_may_order(customer_id, self._statuses.is_active(customer_id))
            # A taken order id shows up as a conflict on save; only then is it looked up.
            if retrying and self._exists(order_stream_id(request.order_id)):
                raise OrderIdTakenError(request.order_id)
            return Decision([request.place()], {"order_id": request.order_id})

        return self._write(decide, claim)

    def place_orders(self, requests: Sequence[OrderRequest]) -> list[Written | Exception]:
        """Many orders at once, each decided and stored as if placed alone.

        For a caller that already holds many requests (the HTTP order desk): one status
        query and one transaction serve them all, with no thread per order. Each outcome
        is the order's Written or the refusal or error that one order met; an order that
        loses a race on save is decided again alone, as place_order would.
        """
        outcomes: dict[int, Written | Exception] = {}
        statuses = self._statuses.are_active([request.customer_id for request in requests])
        deciding: list[int] = []
        commands: list[list[Any]] = []
        for index, (request, active) in enumerate(zip(requests, statuses, strict=True)):
            try:
                if isinstance(active, Exception):
                    raise active
                _check_may_order(request.customer_id, active)
                order = request.place()
            except Exception as refusal:
                outcomes[index] = refusal
                continue
            deciding.append(index)
            commands.append(list(order.collect_events()))
        saved = self._group_commit.save_each(commands) if commands else []
        for index, recordings in zip(deciding, saved, strict=True):
            request = requests[index]
            if isinstance(recordings, IntegrityError):
                outcomes[index] = self._order_placed_again(request)
            elif isinstance(recordings, Exception):
                outcomes[index] = recordings
            else:
                written = Written({"order_id": request.order_id}, recordings[-1].notification.id)
                outcomes[index] = written
        return [outcomes[index] for index in range(len(requests))]

    def _order_placed_again(self, request: OrderRequest) -> Written | Exception:
        """After a lost race on save: the id was taken (the usual case), or decide again."""
        try:
            if self._exists(order_stream_id(request.order_id)):
                raise OrderIdTakenError(request.order_id)
            return self.place_order(
                request.customer_id, request.amount, request.order_id, request.placed_at
            )
        except Exception as refusal:
            return refusal

    def cancel_order(self, order_id: str, claim: IdempotencyClaim | None = None) -> Written:
        def decide(_: bool) -> Decision:
            order = self._order(order_id)
            order.cancel()
            return Decision([order], {})

        return self._write(decide, claim)

    def refund_order(
        self, order_id: str, amount: Decimal, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            order = self._order(order_id)
            order.refund(amount)
            return Decision([order], {})

        return self._write(decide, claim)

    def get_order(self, order_id: str) -> Order:
        return self._order(order_id)

    # API keys

    def issue_api_key(self, name: str, role: str) -> IssuedKey:
        key = new_secret_key()
        if self._exists(api_key_stream_id(name)):
            raise ApiKeyNameTakenError(name)
        try:
            recordings = self.save(ApiKey(name=name, role=role, key_hash=hash_key(key)))
        except IntegrityError:
            raise ApiKeyNameTakenError(name) from None
        return IssuedKey(name, role, key, recordings[-1].notification.id)

    def revoke_api_key(self, name: str) -> int:
        def decide(_: bool) -> Decision:
            api_key = self._load(ApiKey, api_key_stream_id(name), ApiKeyNotFoundError(name))
            api_key.revoke()
            return Decision([api_key], {})

        return self._write(decide, None).position

    def api_key_entries(self, after: int = 0) -> tuple[list[ApiKeyEntry], int]:
        """Key events after a position, folded into entries; and the last position read."""
        entries: dict[str, ApiKeyEntry] = {}
        position = after
        while True:
            page = self.recorder.select_notifications(position + 1, 1000, topics=API_KEY_TOPICS)
            for notification in page:
                domain_event = self.mapper.to_domain_event(notification)
                position = notification.id
                if isinstance(domain_event, ApiKey.Issued):
                    entries[domain_event.key_hash] = ApiKeyEntry(
                        domain_event.name,
                        domain_event.role,
                        domain_event.key_hash,
                        False,
                        domain_event.timestamp,
                    )
                elif isinstance(domain_event, ApiKey.Revoked):
                    known = entries.get(domain_event.key_hash)
                    entries[domain_event.key_hash] = ApiKeyEntry(
                        known.name if known else "",
                        known.role if known else "",
                        domain_event.key_hash,
                        True,
                        known.issued_at if known else domain_event.timestamp,
                    )
            if len(page) < 1000:
                return list(entries.values()), position

    def has_api_keys(self) -> bool:
        return bool(self.recorder.select_notifications(1, 1, topics=API_KEY_TOPICS))

    # Internals

    def _write(
        self,
        decide: Callable[[bool], Decision],
        claim: IdempotencyClaim | None,
        on_conflict: Callable[[dict[str, Any]], None] | None = None,
    ) -> Written:
        """Decide on current state and save; a lost race is decided again on fresh state.

        With an Idempotency-Key, its record is saved in the same save() (one transaction)
        as the events it guards, so either both are stored or neither; a retry then
        replays the record. Concurrent commands share transactions (group commit).
        """
        with self._claimed(claim):
            for attempt in range(MAX_ATTEMPTS):
                if claim is not None:
                    replay = self._replay(claim)
                    if replay is not None:
                        return replay
                decision = decide(attempt > 0)
                last = decision.aggregates[-1]
                to_save: list[Aggregate] = list(decision.aggregates)
                if claim is not None:
                    record = IdempotencyRecord(
                        scope=claim.scope,
                        key=claim.key,
                        fingerprint=claim.fingerprint,
                        result={
                            **decision.result,
                            _GUARDED_STREAM: last.id.hex,
                            _GUARDED_VERSION: last.version,
                        },
                    )
                    to_save.append(record)
                events = [event for aggregate in to_save for event in aggregate.collect_events()]
                try:
                    recordings = self._group_commit.save(events) if events else []
                except IntegrityError:
                    if on_conflict is not None:
                        on_conflict(decision.result)
                    continue
                # The position is that of the command's last domain event (never the
                # idempotency record's), so readers can wait for it on any projection.
                position = next(
                    (
                        r.notification.id
                        for r in reversed(recordings)
                        if r.notification.originator_id == last.id
                    ),
                    None,
                )
                if position is None:  # nothing changed: the aggregate's latest event
                    position = self._position_of(last.id, last.version)
                return Written(decision.result, position)
        raise ConcurrentUpdateError("too many concurrent updates; try again")

    @contextmanager
    def _claimed(self, claim: IdempotencyClaim | None) -> Iterator[None]:
        if claim is None:
            yield
            return
        token = (claim.scope, claim.key)
        with self._in_flight_lock:
            if token in self._in_flight:
                raise IdempotencyKeyInFlightError(claim.key)
            self._in_flight.add(token)
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(token)

    def _replay(self, claim: IdempotencyClaim) -> Written | None:
        stream_id = idempotency_stream_id(claim.scope, claim.key)
        try:
            record: Aggregate = self.repository.get(stream_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(record, IdempotencyRecord)
        if record.fingerprint != claim.fingerprint:
            raise IdempotencyKeyReusedError(claim.key)
        result = dict(record.result)
        guarded_stream = UUID(hex=result.pop(_GUARDED_STREAM))
        guarded_version = int(result.pop(_GUARDED_VERSION))
        return Written(result, self._position_of(guarded_stream, guarded_version), replayed=True)

    def _position_of(self, stream_id: UUID, version: int) -> int:
        position = position_of(self.recorder, stream_id, version)
        if position is None:
            raise LookupError(f"no stored event {stream_id} v{version}")
        return position

    def _customer(self, customer_id: int) -> Customer:
        return self._load(
            Customer, customer_stream_id(customer_id), CustomerNotFoundError(customer_id)
        )

    def _order(self, order_id: str) -> Order:
        return self._load(Order, order_stream_id(order_id), OrderNotFoundError(order_id))

    def _load(self, kind: type[A], stream_id: UUID, missing: Exception) -> A:
        try:
            aggregate: Aggregate = self.repository.get(stream_id)
        except AggregateNotFoundError:
            raise missing from None
        if not isinstance(aggregate, kind):
            raise missing
        return aggregate

    def _exists(self, stream_id: UUID) -> bool:
        return bool(self.recorder.select_events(stream_id, limit=1))

    def _customer_exists(self, customer_id: int) -> bool:
        return self._exists(customer_stream_id(customer_id))


@dataclass(frozen=True)
class OrderRequest:
    """An order as placed: what the producer sent, with a fresh id and the time if it sent none."""

    customer_id: int
    amount: Decimal
    order_id: str
    placed_at: datetime

    @classmethod
    def new(
        cls,
        customer_id: int,
        amount: Decimal,
        order_id: str | None = None,
        placed_at: datetime | None = None,
    ) -> OrderRequest:
        return cls(
            customer_id, amount, order_id or uuid.uuid4().hex, placed_at or datetime.now(UTC)
        )

    def place(self) -> Order:
        return Order.place(self.order_id, self.customer_id, self.amount, self.placed_at)


def _check_may_order(customer_id: int, active: bool | None) -> None:
    """Orders need a registered, active customer (as read after the request arrived)."""
    if active is None:
        raise CustomerNotFoundError(customer_id)
    if not active:
        raise CustomerInactiveError(customer_id)


class _CustomerIdAllocator:
    """Hands out the next free customer id; other processes may take ids meanwhile.

    Each process keeps a hint. A save that conflicts means another writer took the id;
    the hint then jumps past the taken run by exponential then binary probing.
    """

    def __init__(self, exists: Callable[[int], bool]) -> None:
        self._exists = exists
        self._lock = threading.Lock()
        self._hint: int | None = None

    def next_candidate(self) -> int:
        with self._lock:
            if self._hint is None:
                self._hint = self._first_free_from(1)
            candidate = self._hint
            self._hint += 1
            return candidate

    def taken(self, candidate: int) -> None:
        with self._lock:
            free = self._first_free_from(candidate + 1)
            if self._hint is None or free > self._hint:
                self._hint = free

    def _first_free_from(self, start: int) -> int:
        if not self._exists(start):
            return start
        taken, step = start, 1
        while self._exists(taken + step):
            taken += step
            step *= 2
        free = taken + step
        while free - taken > 1:
            middle = (taken + free) // 2
            if self._exists(middle):
                taken = middle
            else:
                free = middle
        return free


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
