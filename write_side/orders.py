"""Placing orders: the request as placed, and many orders in shared queries and commits."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import IntegrityError

from write_side.command_runner import Written
from write_side.domain.customer import CustomerInactiveError
from write_side.domain.order import Order
from write_side.errors import CustomerNotFoundError

# customer ids -> each one's status (True: active, False: not, None: not registered) or
# the error reading it; commands' events -> each one's recordings or the error saving it.
AreActive = Callable[[Sequence[int]], list[bool | Exception | None]]
SaveEach = Callable[[Sequence[Sequence[Any]]], list[list[Any] | Exception]]


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

    def place(self, active: bool | None) -> Order:
        """The new order, for a customer read (after the request arrived) as `active`.

        Orders need a registered, active customer.
        """
        if active is None:
            raise CustomerNotFoundError(self.customer_id)
        if not active:
            raise CustomerInactiveError(self.customer_id)
        return Order.place(self.order_id, self.customer_id, self.amount, self.placed_at)


def place_many(
    requests: Sequence[OrderRequest],
    are_active: AreActive,
    save_each: SaveEach,
    placed_again: Callable[[OrderRequest], Written | Exception],
) -> list[Written | Exception]:
    """Each order's Written, or the refusal or error that one order met.

    One status query and one transaction serve them all; an order that loses a race on
    save is left to `placed_again`, which decides it alone.
    """
    outcomes: dict[int, Written | Exception] = {}
    statuses = are_active([request.customer_id for request in requests])
    deciding: list[int] = []
    commands: list[list[Any]] = []
    for index, (request, active) in enumerate(zip(requests, statuses, strict=True)):
        try:
            if isinstance(active, Exception):
                raise active
            order = request.place(active)
        except Exception as refusal:
            outcomes[index] = refusal
            continue
        deciding.append(index)
        commands.append(list(order.collect_events()))
    saved = save_each(commands) if commands else []
    for index, recordings in zip(deciding, saved, strict=True):
        request = requests[index]
        if isinstance(recordings, IntegrityError):
            outcomes[index] = placed_again(request)
        elif isinstance(recordings, Exception):
            outcomes[index] = recordings
        else:
            outcomes[index] = Written(
                {"order_id": request.order_id}, recordings[-1].notification.id
            )
    return [outcomes[index] for index in range(len(requests))]
