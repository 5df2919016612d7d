"""Order invariants, without any store: cancel once, refunds never exceed the amount."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from write_side.domain.money import InvalidAmountError
from write_side.domain.order import Order, OrderCancelledError, RefundExceedsAmountError

PLACED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def order(amount: str = "10.00") -> Order:
    return Order.place("o-1", 5, Decimal(amount), PLACED_AT)


def test_a_placed_order_keeps_its_amount_as_a_two_place_decimal() -> None:
    placed = order("10")
    assert placed.amount == Decimal("10.00")
    assert str(placed.amount) == "10.00"
    assert not placed.is_cancelled


@pytest.mark.parametrize("amount", ["0", "-5", "0.001", "1000000000000.01"])
def test_an_order_with_an_invalid_amount_cannot_be_placed(amount: str) -> None:
    with pytest.raises(InvalidAmountError):
        order(amount)


def test_an_order_can_be_cancelled_once() -> None:
    placed = order()
    placed.cancel()
    assert placed.is_cancelled
    with pytest.raises(OrderCancelledError):
        placed.cancel()


def test_cancelling_removes_the_amount_less_refunds() -> None:
    placed = order("10.00")
    placed.refund(Decimal("3.25"))
    placed.cancel()
    cancelled = placed.collect_events()[-1]
    assert isinstance(cancelled, Order.Cancelled)
    # The event states the order's amount and its refunds; what cancelling removes
    # from the totals follows from them.
    assert (cancelled.amount, cancelled.refunded) == (Decimal("10.00"), Decimal("3.25"))
    assert cancelled.amount - cancelled.refunded == Decimal("6.75")
    assert cancelled.customer_id == 5


def test_refunds_may_add_up_to_exactly_the_amount() -> None:
    placed = order("10.00")
    placed.refund(Decimal("9.99"))
    placed.refund(Decimal("0.01"))
    assert placed.refunded == Decimal("10.00")


def test_a_refund_beyond_the_amount_is_refused_and_changes_nothing() -> None:
    placed = order("10.00")
    placed.refund(Decimal("6.00"))
    with pytest.raises(RefundExceedsAmountError):
        placed.refund(Decimal("4.01"))
    assert placed.refunded == Decimal("6.00")


def test_a_cancelled_order_cannot_be_refunded() -> None:
    placed = order()
    placed.cancel()
    with pytest.raises(OrderCancelledError):
        placed.refund(Decimal("1.00"))


@pytest.mark.parametrize("amount", ["0", "-1", "0.005"])
def test_a_refund_must_be_a_positive_two_place_amount(amount: str) -> None:
    with pytest.raises(InvalidAmountError):
        order().refund(Decimal(amount))


def test_event_topics_are_stable_names_independent_of_module_paths() -> None:
    assert Order.Placed.TOPIC == "customers.Order.Placed"
    assert Order.Cancelled.TOPIC == "customers.Order.Cancelled"
    assert Order.Refunded.TOPIC == "customers.Order.Refunded"
    assert all(cls.class_version == 1 for cls in (Order.Placed, Order.Refunded))
    assert Order.Cancelled.class_version == 2  # v1 stored amount_removed; upcast on read


def test_a_v1_cancellation_is_upcast_to_an_order_of_the_amount_it_removed() -> None:
    state = {"customer_id": 5, "amount_removed": Decimal("6.75")}
    Order.Cancelled.upcast_v1_v2(state)
    assert state == {"customer_id": 5, "amount": Decimal("6.75"), "refunded": Decimal("0.00")}
