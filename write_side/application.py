"""The write side's application service: one method per command, each returning a position."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError
from eventsourcing.utils import Environment

from contract.application import APPLICATION_NAME
from edge.access_policy import hash_key
from write_side.api_keys import ApiKeyEntry, IssuedKey, has_keys, read_entries
from write_side.command_runner import CommandRunner, Decision, Written
from write_side.customer_ids import CustomerIdAllocator
from write_side.domain.api_key import ApiKey, new_secret_key
from write_side.domain.customer import Customer, Profile
from write_side.domain.ids import api_key_stream_id, customer_stream_id, order_stream_id
from write_side.domain.order import Order
from write_side.errors import (
    ApiKeyNameTakenError,
    ApiKeyNotFoundError,
    CustomerAlreadyRegisteredError,
    CustomerNotFoundError,
    OrderIdTakenError,
    OrderNotFoundError,
)
from write_side.idempotency import IdempotencyClaim
from write_side.orders import OrderRequest, place_many
from write_side.store_adapter.options import libpq_options
from write_side.store_adapter.queries import position_of, topics_after
from write_side.store_adapter.recorder import with_connection_options
from write_side.throughput.customer_status import CustomerStatuses
from write_side.throughput.group_commit import GroupCommit

A = TypeVar("A", bound=Aggregate)


class CustomerService(Application[UUID]):
    """Customers, orders and API keys, event-sourced in one store."""

    name = APPLICATION_NAME
    env = {"AGGREGATE_CACHE_MAXSIZE": "50000", "DEEPCOPY_FROM_AGGREGATE_CACHE": "y"}

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._ids = CustomerIdAllocator(self._customer_exists)
        self._group_commit = GroupCommit(lambda events: self.save(*events))
        self._statuses = CustomerStatuses(lambda streams: topics_after(self.recorder, streams))
        self._commands = CommandRunner(
            self._group_commit.save,
            self.repository.get,
            lambda stream_id, version: position_of(self.recorder, stream_id, version),
        )

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

        return self._commands.run(decide, claim, on_conflict=lost_race)

    def update_profile(
        self, customer_id: int, changes: Profile, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.update_profile(changes)
            return Decision([customer], {"id": customer_id})

        return self._commands.run(decide, claim)

    def record_login(
        self, customer_id: int, at: datetime | None, claim: IdempotencyClaim | None = None
    ) -> Written:
        when = at or datetime.now(UTC)

        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.record_login(when)
            return Decision([customer], {})

        return self._commands.run(decide, claim)

    def deactivate_customer(
        self, customer_id: int, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.deactivate()
            return Decision([customer], {})

        return self._commands.run(decide, claim)

    def reactivate_customer(
        self, customer_id: int, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            customer = self._customer(customer_id)
            customer.reactivate()
            return Decision([customer], {})

        return self._commands.run(decide, claim)

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
            order = request.place(self._statuses.is_active(customer_id))
            # A taken order id shows up as a conflict on save; only then is it looked up.
            if retrying and self._exists(order_stream_id(request.order_id)):
                raise OrderIdTakenError(request.order_id)
            return Decision([order], {"order_id": request.order_id})

        return self._commands.run(decide, claim)

    def place_orders(self, requests: Sequence[OrderRequest]) -> list[Written | Exception]:
        """Many orders at once, each decided and stored as if placed alone.

        For a caller that already holds many requests (the HTTP order desk): one status
        query and one transaction serve them all, with no thread per order. Each outcome
        is the order's Written or the refusal or error that one order met; an order that
        loses a race on save is decided again alone, as place_order would.
        """
        return place_many(
            requests, self._statuses.are_active, self._group_commit.save_each, self._placed_again
        )

    def _placed_again(self, request: OrderRequest) -> Written | Exception:
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

        return self._commands.run(decide, claim)

    def refund_order(
        self, order_id: str, amount: Decimal, claim: IdempotencyClaim | None = None
    ) -> Written:
        def decide(_: bool) -> Decision:
            order = self._order(order_id)
            order.refund(amount)
            return Decision([order], {})

        return self._commands.run(decide, claim)

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

        return self._commands.run(decide).position

    def api_key_entries(self, after: int = 0) -> tuple[list[ApiKeyEntry], int]:
        """Key events after a position, folded into entries; and the last position read."""
        return read_entries(self.recorder, self.mapper, after)

    def has_api_keys(self) -> bool:
        return has_keys(self.recorder)

    # Loading

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
