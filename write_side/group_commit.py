"""Group commit: concurrent saves share one transaction, so one durable commit serves many.

A durable PostgreSQL commit waits for the disk (milliseconds), and the library's recorder
holds a table lock across it, so one save per transaction caps a store at a few hundred
writes per second however many threads wait. Here each caller hands in the events of one
command; whichever caller finds no commit in progress becomes the leader, stores every
waiting command's events in one transaction, and wakes the others with their own
recordings. A command's events are never split across transactions, and nobody is
answered before the transaction holding its events has committed.

If the shared transaction hits a uniqueness conflict (some command lost an optimistic
concurrency race), the batch is halved and each half retried, until the conflicting
command fails alone with IntegrityError and every other command is stored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError

Store = Callable[[Sequence[Any]], list[Any]]

MAX_EVENTS_PER_COMMIT = 1000


class _Command:
    __slots__ = ("error", "events", "promoted", "recordings", "settled")

    def __init__(self, events: Sequence[Any]) -> None:
        self.events = events
        self.recordings: list[Any] | None = None
        self.error: BaseException | None = None
        self.promoted = False
        self.settled = threading.Event()


class GroupCommit:
    """Stores each command's events atomically, many commands per transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._waiting: list[_Command] = []
        self._leading = False

    def save(self, events: Sequence[Any]) -> list[Any]:
        """Store `events` in one transaction and return their recordings, in order."""
        command = _Command(events)
        with self._lock:
            self._waiting.append(command)
            lead = not self._leading
            self._leading = True
        if not lead:
            command.settled.wait()
            if not command.promoted:
                return self._outcome(command)
        self._lead()
        return self._outcome(command)

    def _lead(self) -> None:
        with self._lock:
            batch = self._take_batch()
        self._commit(batch)
        with self._lock:
            if self._waiting:
                # Hand over to a waiting caller, so this one can answer its own request.
                successor = self._waiting[0]
                successor.promoted = True
                successor.settled.set()
            else:
                self._leading = False

    def _take_batch(self) -> list[_Command]:
        batch: list[_Command] = []
        size = 0
        while self._waiting and (
            not batch or size + len(self._waiting[0].events) <= MAX_EVENTS_PER_COMMIT
        ):
            command = self._waiting.pop(0)
            batch.append(command)
            size += len(command.events)
        return batch

    def _commit(self, batch: list[_Command]) -> None:
        try:
            recordings = self._store([event for command in batch for event in command.events])
        except IntegrityError as error:
            if len(batch) == 1:
                self._settle(batch[0], error=error)
                return
            middle = len(batch) // 2
            self._commit(batch[:middle])
            self._commit(batch[middle:])
            return
        except BaseException as error:
            for command in batch:
                self._settle(command, error=error)
            if not isinstance(error, Exception):
                raise
            return
        start = 0
        for command in batch:
            end = start + len(command.events)
            self._settle(command, recordings=recordings[start:end])
            start = end

    @staticmethod
    def _settle(
        command: _Command,
        recordings: list[Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        command.recordings = recordings
        command.error = error
        command.promoted = False
        command.settled.set()

    @staticmethod
    def _outcome(command: _Command) -> list[Any]:
        if command.error is not None:
            raise command.error
        assert command.recordings is not None
        return command.recordings
