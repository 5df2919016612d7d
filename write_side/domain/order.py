"""Order: an amount a customer owes, which can be cancelled once or partly refunded."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from write_side.domain.ids import order_stream_id
from write_side.domain.money import parse_amount


class Order(Aggregate):
    """An order; its events carry the customer id so projections need no lookups."""

    TOPIC = "customers.Order"

    class Created(Aggregate.Created):
        TOPIC = "customers.Order.Created"

    class Placed(Created):
        TOPIC = "customers.Order.Placed"
        class_version = 1
        order_id: str
        customer_id: int
        amount: Decimal
        placed_at: datetime

    class Cancelled(Aggregate.Event):
        """The order as it was cancelled: its amount and what had been refunded of it.

        Version 1 stored `amount_removed`, the amount less refunds, a read model's notion.
        """

        TOPIC = "customers.Order.Cancelled"
        class_version = 2
        customer_id: int
        amount: Decimal
        refunded: Decimal

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Only the remainder was stored, so it reads as an order of that amount with
            # nothing refunded: cancelling it removes from the totals what v1 removed.
            state["amount"] = state.pop("amount_removed")
            state["refunded"] = Decimal("0.00")

    class Refunded(Aggregate.Event):
        TOPIC = "customers.Order.Refunded"
        class_version = 1
        customer_id: int
        amount: Decimal

    @staticmethod
    def create_id(order_id: str, **_: Any) -> UUID:
        return order_stream_id(order_id)

    @classmethod
    def place(cls, order_id: str, customer_id: int, amount: Decimal, placed_at: datetime) -> Order:
        """A new order; the amount must be positive, two places at most, within bounds."""
        order: Order = cls(
            order_id=order_id,
            customer_id=customer_id,
            amount=parse_amount(amount),
            placed_at=placed_at,
        )
        return order

    @event(Placed)
    def __init__(
        self, order_id: str, customer_id: int, amount: Decimal, placed_at: datetime
    ) -> None:
        self.order_id = order_id
        self.customer_id = customer_id
        self.amount = amount
        self.placed_at = placed_at
        self.refunded = Decimal("0.00")
        self.is_cancelled = False

    def cancel(self) -> None:
        self.check_not_cancelled()
        self._cancelled(self.customer_id, self.amount, self.refunded)

    @event(Cancelled)
    def _cancelled(self, customer_id: int, amount: Decimal, refunded: Decimal) -> None:
        self.is_cancelled = True

    def refund(self, amount: Decimal) -> None:
        amount = parse_amount(amount)
        self.check_not_cancelled()
        self.check_refund_within_amount(amount)
        self._refunded(self.customer_id, amount)

    @event(Refunded)
    def _refunded(self, customer_id: int, amount: Decimal) -> None:
        self.refunded += amount

    def check_not_cancelled(self) -> None:
        if self.is_cancelled:
            raise OrderCancelledError(self.order_id)

    def check_refund_within_amount(self, amount: Decimal) -> None:
        if self.refunded + amount > self.amount:
            raise RefundExceedsAmountError(
                f"refunds would total {self.refunded + amount}, above the amount {self.amount}"
            )


class OrderError(Exception):
    """Base class for order invariant violations."""


class OrderCancelledError(OrderError):
    """The order is cancelled already."""


class RefundExceedsAmountError(OrderError):
    """Refunds would exceed the order's amount."""
