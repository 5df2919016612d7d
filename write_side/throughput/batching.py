"""Leader/follower batching: concurrent callers share one round trip to the store.

Each caller enqueues its item. A caller that finds no batch in progress becomes the
leader: it takes everything waiting, processes it as one batch and settles every call.
Callers that arrived meanwhile wait; when the leader is done, it hands the lead to the
first of them (so the leader can answer its own request) and that caller processes the
next batch. Every item is processed by a batch that started after it was enqueued.

A caller that already holds many items (a batch of its own) hands them in together with
`submit_many` and gets one outcome per item, an error in place of a result.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Latch:
    """A one-way gate, opened once: what threading.Event does, for a sixth of the cost.

    A call is made per item on the hot write path; an Event builds a Condition each time
    (create, open and wait: 0.5 µs against 2.9 µs).
    """

    __slots__ = ("_lock", "is_open")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.is_open = False

    def open(self) -> None:
        # Only the thread that holds the lead opens a call's gate, one at a time.
        if not self.is_open:
            self.is_open = True
            self._lock.release()

    def wait(self) -> None:
        with self._lock:
            pass


class Call(Generic[T, R]):
    """One caller's item, and then its result or error."""

    __slots__ = ("error", "has_result", "item", "promoted", "result", "settled")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.has_result = False
        self.error: BaseException | None = None
        self.promoted = False
        self.settled = Latch()

    def succeed(self, result: R) -> None:
        self.result, self.has_result, self.promoted = result, True, False
        self.settled.open()

    def fail(self, error: BaseException) -> None:
        self.error, self.promoted = error, False
        self.settled.open()


class Batching(ABC, Generic[T, R]):
    """Subclasses say how one batch is processed; this class coordinates the callers."""

    def __init__(self, max_batch: int) -> None:
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: deque[Call[T, R]] = deque()
        self._leading = False

    def submit(self, item: T) -> R:
        call: Call[T, R] = Call(item)
        self._join([call])
        return self._outcome(call)

    def submit_many(self, items: Sequence[T]) -> list[R | Exception]:
        """Each item's result, or the exception it failed with, in the order given."""
        calls: list[Call[T, R]] = [Call(item) for item in items]
        if calls:
            self._join(calls)
        return [self._outcome_or_error(call) for call in calls]

    @abstractmethod
    def process(self, batch: list[Call[T, R]]) -> None:
        """Settle every call of the batch (succeed or fail); must not raise."""

    def batch_weight(self, item: T) -> int:
        return 1

    def _join(self, calls: list[Call[T, R]]) -> None:
        """Queue the calls and wait until each is settled, leading when the lead comes."""
        with self._lock:
            self._waiting.extend(calls)
            lead = not self._leading
            self._leading = True
        try:
            if lead:
                self._lead()
            # The queue is first in, first out and the lead passes to its head, so by the
            # time one of these calls is promoted, every earlier one has been settled.
            for call in calls:
                call.settled.wait()
                if call.promoted:
                    self._lead()
        except BaseException as error:
            self._abandon(calls, error)
            raise

    def _lead(self) -> None:
        with self._lock:
            batch: list[Call[T, R]] = []
            weight = 0
            while self._waiting and (
                not batch or weight + self.batch_weight(self._waiting[0].item) <= self._max_batch
            ):
                call = self._waiting.popleft()
                batch.append(call)
                weight += self.batch_weight(call.item)
        try:
            self.process(batch)
        except BaseException as error:
            for call in batch:
                if not call.settled.is_open or call.promoted:
                    call.fail(error)
            raise
        finally:
            with self._lock:
                self._pass_lead()

    def _pass_lead(self) -> None:
        """With the lock held: hand the lead to the first waiting call, or give it up."""
        if self._waiting:
            successor = self._waiting[0]
            successor.promoted = True
            successor.settled.open()
        else:
            self._leading = False

    def _abandon(self, calls: list[Call[T, R]], error: BaseException) -> None:
        """A caller leaves with an error: its queued calls go with it, the lead never does.

        Were the lead to leave with them, every later caller would wait for a leader that
        never comes.
        """
        mine = set(calls)
        with self._lock:
            held_lead = any(call.promoted for call in calls)
            queued = [call for call in self._waiting if call in mine]
            self._waiting = deque(call for call in self._waiting if call not in mine)
            if held_lead:
                self._pass_lead()
        for call in queued:  # in no batch, so nobody else settles them
            call.fail(error)

    @staticmethod
    def _outcome_or_error(call: Call[T, R]) -> R | Exception:
        if call.error is None:
            return call.result  # type: ignore[return-value]
        if isinstance(call.error, Exception):
            return call.error
        raise call.error

    @staticmethod
    def _outcome(call: Call[T, R]) -> R:
        if call.error is not None:
            raise call.error
        assert call.has_result
        return call.result  # type: ignore[return-value]
