"""The order desk on real stores: orders from the event loop, placed in shared batches."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import pytest

from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.command_runner import Written
from write_side.domain.customer import CustomerInactiveError
from write_side.domain.order import Order
from write_side.errors import CustomerNotFoundError, OrderIdTakenError
from write_side.key_directory import KeyDirectory
from write_side.orders import OrderRequest
from write_side.throughput.order_desk import REFER, OrderDesk, Outcome


@dataclass
class Desk:
    service: CustomerService
    desk: OrderDesk
    key: str
    batch_sizes: list[int]

    def place_all(
        self, requests: Sequence[OrderRequest], key: str | Sequence[str] | None = None
    ) -> list[Outcome]:
        """Every request handed to the desk at once from one event loop (one key or one each)."""
        keys = [key or self.key] * len(requests) if not isinstance(key, list) else key

        async def place() -> list[Outcome]:
            return await asyncio.gather(
                *(self.desk.place(k, request) for k, request in zip(keys, requests, strict=True))
            )

        return asyncio.run(place())

    def placed(self) -> list[Order.Placed]:
        page = self.service.recorder.select_notifications(1, 100_000, topics=[Order.Placed.TOPIC])
        events = [self.service.mapper.to_domain_event(n) for n in page]
        return [event for event in events if isinstance(event, Order.Placed)]


@pytest.fixture
def desk(event_store_url: str) -> Iterator[Desk]:
    service = CustomerService(event_store_env(event_store_url))
    key = service.issue_api_key("shop", "producer").key
    for customer_id in (1, 2, 3):
        service.register_customer(customer_id, {})
    batch_sizes: list[int] = []
    place_orders = service.place_orders

    def counted(requests: Sequence[OrderRequest]) -> list[Written | Exception]:
        batch_sizes.append(len(requests))
        return place_orders(requests)

    service.place_orders = counted  # type: ignore[method-assign]
    desk = OrderDesk(service, KeyDirectory(service).may_write)
    yield Desk(service, desk, key, batch_sizes)
    desk.close()
    service.close()


def order(customer_id: int, amount: str = "1.00", order_id: str | None = None) -> OrderRequest:
    return OrderRequest.new(customer_id, Decimal(amount), order_id)


def test_orders_arriving_together_share_batches_and_each_gets_its_own_position(
    desk: Desk,
) -> None:
    # 300 orders for three customers are handed over at once.
    requests = [order(1 + i % 3, "2.50") for i in range(300)]
    outcomes = desk.place_all(requests)
    # Each was placed, at its own position, which is where its Placed event is stored.
    assert all(isinstance(outcome, Written) for outcome in outcomes)
    written = [outcome for outcome in outcomes if isinstance(outcome, Written)]
    assert len({w.position for w in written}) == 300
    for request, w in zip(requests, written, strict=True):
        assert w.result == {"order_id": request.order_id}
        stored = desk.service.get_order(request.order_id)
        assert (stored.customer_id, stored.amount) == (request.customer_id, Decimal("2.50"))
    assert len(desk.placed()) == 300
    # Batches of many orders did the work.
    assert sum(desk.batch_sizes) == 300
    assert max(desk.batch_sizes) > 1


def test_a_refused_order_fails_alone_and_the_rest_of_its_batch_is_stored(desk: Desk) -> None:
    desk.service.deactivate_customer(2)
    outcomes = desk.place_all([order(1), order(2), order(99), order(3)])
    assert isinstance(outcomes[0], Written)
    assert isinstance(outcomes[1], CustomerInactiveError)
    assert isinstance(outcomes[2], CustomerNotFoundError)
    assert isinstance(outcomes[3], Written)
    assert sorted(e.customer_id for e in desk.placed()) == [1, 3]


def test_one_order_id_twice_in_one_batch_is_stored_once_and_refused_once(desk: Desk) -> None:
    outcomes = desk.service.place_orders(
        [order(1, "1.00", "dup-1"), order(2, "3.00"), order(3, "2.00", "dup-1")]
    )
    assert isinstance(outcomes[0], Written)
    assert isinstance(outcomes[1], Written)
    assert isinstance(outcomes[2], OrderIdTakenError)
    assert desk.service.get_order("dup-1").customer_id == 1
    assert [e.order_id for e in desk.placed()].count("dup-1") == 1
    assert len(desk.placed()) == 2


def test_an_order_id_already_in_the_store_is_refused(desk: Desk) -> None:
    desk.service.place_order(1, Decimal("1.00"), "taken")
    [outcome] = desk.place_all([order(2, "5.00", "taken")])
    assert isinstance(outcome, OrderIdTakenError)
    assert desk.service.get_order("taken").customer_id == 1


def test_a_key_that_may_not_write_is_referred_back_and_nothing_is_stored(desk: Desk) -> None:
    staff_key = desk.service.issue_api_key("staff-tool", "staff").key
    desk.service.revoke_api_key("shop")
    for key in (staff_key, desk.key, "no-such-key"):
        assert desk.place_all([order(1)], key=key) == [REFER]
    assert desk.placed() == []


def test_a_closed_desk_places_nothing_more_and_refers_new_orders(desk: Desk) -> None:
    [first] = desk.place_all([order(1)])
    assert isinstance(first, Written)
    desk.desk.close()
    assert desk.place_all([order(1)]) == [REFER]
    assert len(desk.placed()) == 1


def test_listeners_hear_of_batches_that_stored_an_order_and_only_those(desk: Desk) -> None:
    heard: list[str] = []
    desk.desk.on_placed(lambda: heard.append("placed"))
    # A batch of refusals stores nothing: nobody is told.
    desk.place_all([order(99), order(98)])
    assert heard == []
    # A batch that stored an order is announced (the in-process projector wakes on it).
    desk.place_all([order(1)])
    assert heard == ["placed"]


def test_a_batch_that_fails_unexpectedly_answers_its_orders_with_the_error_only(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(requests: Sequence[OrderRequest]) -> list[Written | Exception]:
        raise RuntimeError("broken")

    monkeypatch.setattr(desk.service, "place_orders", broken)
    keys = [desk.key, "nope", desk.key, "nope"]
    outcomes = desk.place_all([order(1), order(2), order(3), order(1)], key=keys)
    # The orders it tried to place get the error; a key that may not write is still
    # referred to the route (which answers 401), never turned into the batch's error.
    assert [type(outcome) for outcome in outcomes[0::2]] == [RuntimeError, RuntimeError]
    assert outcomes[1::2] == [REFER, REFER]
    assert desk.placed() == []
