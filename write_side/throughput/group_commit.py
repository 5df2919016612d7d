"""Group commit: concurrent saves share one transaction, so one durable commit serves many.

A durable PostgreSQL commit waits for the disk (milliseconds), and the library's recorder
holds a table lock across it, so one save per transaction caps a store at a few hundred
writes per second however many threads wait. Here each caller hands in the events of one
command; the batch leader (see batching) stores every waiting command's events
in one transaction and answers each with its own recordings. A command's events are never
split across transactions, and nobody is answered before the transaction holding its
events has committed.

If the shared transaction hits a uniqueness conflict (some command lost an optimistic
concurrency race), the batch is halved and each half retried, until the conflicting
command fails alone with IntegrityError and every other command is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError

from write_side.throughput.batching import Batching, Call

Store = Callable[[Sequence[Any]], list[Any]]
Events = Sequence[Any]

MAX_EVENTS_PER_COMMIT = 1000


class GroupCommit(Batching[Events, list[Any]]):
    """Stores each command's events atomically, many commands per transaction."""

    def __init__(self, store: Store) -> None:
        super().__init__(max_batch=MAX_EVENTS_PER_COMMIT)
        self._store = store

    def save(self, events: Events) -> list[Any]:
        """Store `events` in one transaction and return their recordings, in order."""
        return self.submit(events)

    def save_each(self, commands: Sequence[Events]) -> list[list[Any] | Exception]:
        """Each command's recordings, or the error that kept it out of the store.

        For a caller holding many commands at once: they join the shared transactions as
        if each had been saved by its own thread, with the same atomicity per command.
        """
        return self.submit_many(commands)

    def batch_weight(self, item: Events) -> int:
        return len(item)

    def process(self, batch: list[Call[Events, list[Any]]]) -> None:
        try:
            recordings = self._store([event for call in batch for event in call.item])
        except IntegrityError as error:
            if len(batch) == 1:
                batch[0].fail(error)
                return
            middle = len(batch) // 2
            self.process(batch[:middle])
            self.process(batch[middle:])
            return
        except Exception as error:
            for call in batch:
                call.fail(error)
            return
        start = 0
        for call in batch:
            end = start + len(call.item)
            call.succeed(recordings[start:end])
            start = end
