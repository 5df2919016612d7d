"""Leader/follower batching: single items and whole batches share rounds, none is lost."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.waiting import wait_until
from write_side.throughput.batching import Batching, Call, Latch

BLOW_UP = -1000


class Interrupted(BaseException):
    """Like KeyboardInterrupt, which pytest itself would catch."""


class Doubling(Batching[int, int]):
    """Doubles each item; negative items fail alone; records every batch it processed.

    BLOW_UP makes the whole batch fail with a BaseException, as an interrupt would.
    """

    def __init__(self, max_batch: int, gate: threading.Event | None = None) -> None:
        super().__init__(max_batch)
        self.batches: list[list[int]] = []
        self._gate = gate
        self.entered = threading.Event()

    def process(self, batch: list[Call[int, int]]) -> None:
        self.entered.set()
        if self._gate is not None:
            self._gate.wait()
        self.batches.append([call.item for call in batch])
        if any(call.item == BLOW_UP for call in batch):
            raise Interrupted
        for call in batch:
            if call.item < 0:
                call.fail(ValueError(f"negative: {call.item}"))
            else:
                call.succeed(call.item * 2)


def test_submit_many_answers_every_item_in_order_with_errors_in_place() -> None:
    batching = Doubling(max_batch=100)
    outcomes = batching.submit_many([1, -2, 3])
    assert outcomes[0] == 2
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == 6


def test_submit_many_of_nothing_processes_nothing() -> None:
    batching = Doubling(max_batch=10)
    assert batching.submit_many([]) == []
    assert batching.batches == []


def test_submit_many_splits_items_beyond_the_batch_limit_across_rounds() -> None:
    batching = Doubling(max_batch=4)
    assert batching.submit_many(list(range(10))) == [i * 2 for i in range(10)]
    assert [len(batch) for batch in batching.batches] == [4, 4, 2]


def test_batches_and_single_items_from_many_threads_share_rounds_and_all_settle() -> None:
    gate = threading.Event()
    batching = Doubling(max_batch=50, gate=gate)
    singles = list(range(1000, 1040))
    batches = [list(range(start, start + 25)) for start in range(0, 200, 25)]
    with ThreadPoolExecutor(max_workers=len(singles) + len(batches)) as pool:
        # The first single item leads a round, which the gate holds ...
        single_results = [pool.submit(batching.submit, singles[0])]
        assert batching.entered.wait(timeout=5)
        # ... while everything else queues behind it.
        single_results += [pool.submit(batching.submit, item) for item in singles[1:]]
        batch_results = [pool.submit(batching.submit_many, items) for items in batches]
        queued = len(singles) - 1 + sum(map(len, batches))
        assert wait_until(lambda: len(batching._waiting) == queued)
        gate.set()
        assert [future.result(timeout=10) for future in single_results] == [
            item * 2 for item in singles
        ]
        for items, future in zip(batches, batch_results, strict=True):
            assert future.result(timeout=10) == [item * 2 for item in items]
    processed = [item for batch in batching.batches for item in batch]
    assert sorted(processed) == sorted(singles + [i for items in batches for i in items])
    assert all(len(batch) <= 50 for batch in batching.batches)
    assert len(batching.batches) < len(singles) + len(batches)  # rounds were shared


def test_a_latch_holds_waiters_until_opened_then_lets_all_through() -> None:
    latch = Latch()
    assert not latch.is_open
    passed: list[int] = []

    def wait_then_pass(index: int) -> None:
        latch.wait()
        passed.append(index)

    waiters = [threading.Thread(target=wait_then_pass, args=(i,)) for i in range(5)]
    for waiter in waiters:
        waiter.start()
    waiters[0].join(timeout=0.1)
    # Held at the closed gate.
    assert waiters[0].is_alive()
    assert passed == []
    latch.open()
    latch.open()  # opening twice changes nothing
    for waiter in waiters:
        waiter.join(timeout=5)
    assert sorted(passed) == [0, 1, 2, 3, 4]
    assert latch.is_open
    latch.wait()  # an open latch never blocks again


def test_a_caller_leaving_with_an_interrupt_takes_its_calls_but_not_the_lead() -> None:
    batching = Doubling(max_batch=1)
    # The third round blows up, just after the lead passed to the caller's last item.
    with pytest.raises(Interrupted):
        batching.submit_many([1, 2, BLOW_UP, 4])
    assert batching.batches == [[1], [2], [BLOW_UP]]
    # Later callers are served: nobody waits for a leader that left.
    served: list[object] = []

    def later_callers() -> None:
        served.append(batching.submit(5))
        served.append(batching.submit_many([6, 7]))

    caller = threading.Thread(target=later_callers, daemon=True)  # a hang fails, not blocks
    caller.start()
    caller.join(timeout=5)
    assert served == [10, [12, 14]]
