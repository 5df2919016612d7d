"""The order desk: orders handed over by the event loop, placed in batches by one thread.

The HTTP fast path for POST /api/orders runs in the server's event loop, which must never
wait for the store. It hands each order to the desk and awaits the outcome. The desk's
thread takes every order waiting, checks each caller's key, places them all with
CustomerService.place_orders (one status query and one transaction for the lot) and
settles the whole batch with one wake-up of each waiting event loop. Compared with a
thread per request, that saves the hand-offs, locks and thread switches that profiling
showed cost more CPU than the command itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import InterfaceError, OperationalError

from write_side.application import CustomerService
from write_side.command_runner import Written
from write_side.orders import OrderRequest

log = logging.getLogger("customers.write")

# Orders per batch. More waiting than this are placed by the next batch.
MAX_BATCH = 500
STOP_SECONDS = 10.0


class Referral:
    """The outcome for an order the desk does not decide: the full route answers it."""

    def __repr__(self) -> str:
        return "REFER"


REFER = Referral()

Outcome = Written | Exception | Referral


# Whether a key may place orders, asked with the moment its request arrived (so that one
# refresh of the keys serves every request that arrived before it began).
KeyCheck = Callable[[str, float], bool]


StoreError = OperationalError | InterfaceError


@dataclass(frozen=True)
class _StoreFailure:
    at: float  # time.monotonic() when it was seen
    error: StoreError


@dataclass(frozen=True)
class _Ticket:
    key: str
    arrived: float
    request: OrderRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]


class OrderDesk:
    """Places orders for async callers in batches, from one worker thread."""

    def __init__(
        self,
        service: CustomerService,
        may_place: KeyCheck,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._service = service
        self._may_place = may_place
        self._max_batch = max_batch
        self._waiting: deque[_Ticket] = deque()
        self._ready = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        # The last batch's store failure: orders that waited through it get it too.
        self._store_failure: _StoreFailure | None = None

    def on_placed(self, listener: Callable[[], None]) -> None:
        """Have `listener` called, in the desk's thread, after each batch that stored an order.

        It runs before that batch's callers are answered.
        """
        self._listeners.append(listener)

    async def place(self, key: str, request: OrderRequest) -> Outcome:
        """The order's Written, the refusal or error it met, or REFER.

        REFER means the desk did not decide: the key is not one that may place orders
        (or checking it failed unexpectedly), or the desk is closed. Nothing was stored.
        If the store could not be reached to check the key, that error is the outcome;
        an order that waited while a batch met a store error gets that error too, at
        once, rather than another wait for the store.
        """
        arrived = time.monotonic()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        with self._ready:
            if self._closed:
                return REFER
            self._waiting.append(_Ticket(key, arrived, request, loop, future))
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="order-desk", daemon=True)
                self._worker.start()
            self._ready.notify()
        return await future

    def close(self) -> None:
        """Place what is waiting, then stop the worker."""
        with self._ready:
            self._closed = True
            self._ready.notify()
            worker = self._worker
        if worker is not None:
            worker.join(STOP_SECONDS)
            if worker.is_alive():
                log.warning("the order desk was still placing orders after %.0f s", STOP_SECONDS)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._closed:
                    self._ready.wait()
                if not self._waiting:
                    return
                count = min(len(self._waiting), self._max_batch)
                batch = [self._waiting.popleft() for _ in range(count)]
            try:
                outcomes = self._decide(batch)
            except BaseException:  # the thread is going down: answer everyone waiting
                with self._ready:
                    batch += self._waiting
                    self._waiting.clear()
                    self._worker = None  # the next order starts a new one
                _settle(batch, [DeskStoppedError("the order desk stopped")] * len(batch))
                raise
            # Listeners first: the in-process projector starts on the orders at once.
            if any(isinstance(outcome, Written) for outcome in outcomes):
                self._tell_listeners()
            _settle(batch, outcomes)

    def _decide(self, batch: list[_Ticket]) -> list[Outcome]:
        outcomes: list[Outcome] = [REFER] * len(batch)
        failure = self._store_failure
        placing: list[int] = []
        verdicts: dict[str, bool | StoreError] = {}
        for index, ticket in enumerate(batch):
            if failure is not None and ticket.arrived <= failure.at:
                # It waited through a store failure: answered with it, no new attempt.
                outcomes[index] = failure.error
                continue
            if ticket.key not in verdicts:
                verdicts[ticket.key] = self._key_verdict(ticket)
            verdict = verdicts[ticket.key]
            if isinstance(verdict, Exception):
                outcomes[index] = verdict
            elif verdict:
                placing.append(index)
        if placing:
            try:
                placed = self._service.place_orders([batch[index].request for index in placing])
            except Exception as error:  # never leave a caller waiting
                log.exception("order desk batch failed")
                placed = [error] * len(placing)
            for index, outcome in zip(placing, placed, strict=True):
                outcomes[index] = outcome
        store_errors = [outcome for outcome in outcomes if isinstance(outcome, StoreError)]
        if store_errors:
            self._store_failure = _StoreFailure(time.monotonic(), store_errors[0])
        elif any(isinstance(outcome, Written) for outcome in outcomes):
            self._store_failure = None
        return outcomes

    def _key_verdict(self, ticket: _Ticket) -> bool | StoreError:
        """Whether the ticket's key may place orders, or why the store could not tell."""
        try:
            return self._may_place(ticket.key, ticket.arrived)
        except (OperationalError, InterfaceError) as error:
            return error  # the route could not tell either: 503
        except Exception:  # the route checks again and answers
            log.exception("order desk key check failed")
            return False

    def _tell_listeners(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("order desk listener failed")


def _settle(batch: list[_Ticket], outcomes: list[Outcome]) -> None:
    """Hand each outcome to its caller: one call into each event loop for the batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome]]] = {}
    for ticket, outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(ticket.loop, []).append((ticket.future, outcome))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, settled)
        except RuntimeError:  # that loop has closed; nobody is waiting any more
            continue


def _resolve(settled: list[tuple[asyncio.Future[Outcome], Outcome]]) -> None:
    for future, outcome in settled:
        if not future.done():
            future.set_result(outcome)


class DeskStoppedError(Exception):
    """The desk's thread stopped while deciding a batch."""
