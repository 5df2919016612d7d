"""Group commit on real stores: commands share transactions but never each other's fate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.domain.order import Order
from write_side.throughput.group_commit import GroupCommit

PLACED_AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def service(event_store_url: str) -> Iterator[CustomerService]:
    service = CustomerService(event_store_env(event_store_url))
    yield service
    service.close()


def placed(order_id: str) -> list[Any]:
    return list(Order.place(order_id, 1, Decimal("1.00"), PLACED_AT).collect_events())


def refunded_twice(order_id: str) -> list[Any]:
    """A command of two events, to check that commands are never split."""
    order = Order.place(order_id, 1, Decimal("9.00"), PLACED_AT)
    order.refund(Decimal("1.00"))
    return list(order.collect_events())


def stored_streams(service: CustomerService) -> list[str]:
    return [str(n.originator_id) for n in service.recorder.select_notifications(1, 10_000)]


def test_concurrent_commands_are_all_stored_in_order_with_their_own_recordings(
    service: CustomerService,
) -> None:
    group = GroupCommit(lambda events: service.save(*events))
    commands = [refunded_twice(f"o-{i}") for i in range(40)]
    start = threading.Barrier(40)

    def save(events: list[Any]) -> list[Any]:
        start.wait()
        return group.save(events)

    # Forty commands of two events each arrive at once.
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(save, commands))
    # Each got the recordings of exactly its own events, at consecutive positions.
    for events, recordings in zip(commands, results, strict=True):
        assert [r.domain_event for r in recordings] == events
        first, second = (r.notification.id for r in recordings)
        assert second == first + 1
    assert len(stored_streams(service)) == 80


def test_a_conflicting_command_fails_alone_and_the_others_are_stored(
    service: CustomerService,
) -> None:
    group = GroupCommit(lambda events: service.save(*events))
    group.save(placed("taken"))
    commands = [placed(f"o-{i}") for i in range(19)]
    commands.insert(7, placed("taken"))  # loses to the order stored before
    start = threading.Barrier(len(commands))

    def save(events: list[Any]) -> list[Any] | Exception:
        start.wait()
        try:
            return group.save(events)
        except IntegrityError as error:
            return error

    # Twenty commands arrive at once; one of them reuses a stored order's stream.
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = list(pool.map(save, commands))
    # Only that one failed; the nineteen others were stored.
    assert [isinstance(r, IntegrityError) for r in results] == [i == 7 for i in range(20)]
    assert len(stored_streams(service)) == 20


def test_two_commands_on_one_stream_in_one_batch_cannot_both_win(
    service: CustomerService,
) -> None:
    group = GroupCommit(lambda events: service.save(*events))
    first, second = placed("same"), placed("same")
    start = threading.Barrier(2)

    def save(events: list[Any]) -> bool:
        start.wait()
        try:
            group.save(events)
        except IntegrityError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(save, [first, second]))
    assert outcomes == [False, True]
    assert len(stored_streams(service)) == 1
