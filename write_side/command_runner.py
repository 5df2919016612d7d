"""Running a command: decide on current state, save atomically, decide again after a lost race."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Recording

from write_side.domain.idempotency import IdempotencyRecord
from write_side.domain.ids import idempotency_stream_id
from write_side.errors import ConcurrentUpdateError
from write_side.idempotency import ClaimsInFlight, IdempotencyClaim, new_record, replayed

# Optimistic concurrency: a command that lost a race is decided again on fresh state.
MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class Decision:
    """A command's outcome before saving: aggregates with new events, and the reply."""

    aggregates: Sequence[Aggregate]
    result: dict[str, Any]


@dataclass(frozen=True)
class Written:
    """What a command produced: its result, and the position of the last event it stored."""

    result: dict[str, Any]
    position: int
    replayed: bool = False


# A command's decision on current state; True when deciding again after a lost race.
Decide = Callable[[bool], Decision]
Save = Callable[[Sequence[DomainEventProtocol[UUID]]], list[Recording[UUID]]]


class CommandRunner:
    """Decides and saves commands, each in one transaction with its idempotency record."""

    def __init__(
        self,
        save: Save,
        get: Callable[[UUID], Aggregate],
        position_of: Callable[[UUID, int], int | None],
    ) -> None:
        self._save = save
        self._get = get
        self._position_of = position_of
        self.in_flight = ClaimsInFlight()

    def run(
        self,
        decide: Decide,
        claim: IdempotencyClaim | None = None,
        on_conflict: Callable[[dict[str, Any]], None] | None = None,
    ) -> Written:
        """Decide on current state and save; a lost race is decided again on fresh state.

        With an Idempotency-Key, its record is saved in the same save() (one transaction)
        as the events it guards, so either both are stored or neither; a retry then
        replays the record. Concurrent commands share transactions (group commit).
        """
        with self.in_flight.hold(claim):
            for attempt in range(MAX_ATTEMPTS):
                if claim is not None:
                    replay = self._replay(claim)
                    if replay is not None:
                        return replay
                decision = decide(attempt > 0)
                last = decision.aggregates[-1]
                to_save: list[Aggregate] = list(decision.aggregates)
                if claim is not None:
                    to_save.append(new_record(claim, decision.result, last))
                events = [event for aggregate in to_save for event in aggregate.collect_events()]
                try:
                    recordings = self._save(events) if events else []
                except IntegrityError:
                    if on_conflict is not None:
                        on_conflict(decision.result)
                    continue
                # The position is that of the command's last domain event (never the
                # idempotency record's), so readers can wait for it on any projection.
                position = next(
                    (
                        r.notification.id
                        for r in reversed(recordings)
                        if r.notification.originator_id == last.id
                    ),
                    None,
                )
                if position is None:  # nothing changed: the aggregate's latest event
                    position = self.position(last.id, last.version)
                return Written(decision.result, position)
        raise ConcurrentUpdateError("too many concurrent updates; try again")

    def position(self, stream_id: UUID, version: int) -> int:
        """The store position of a stored event; LookupError if there is none."""
        position = self._position_of(stream_id, version)
        if position is None:
            raise LookupError(f"no stored event {stream_id} v{version}")
        return position

    def _replay(self, claim: IdempotencyClaim) -> Written | None:
        try:
            record = self._get(idempotency_stream_id(claim.scope, claim.key))
        except AggregateNotFoundError:
            return None
        assert isinstance(record, IdempotencyRecord)
        reply, stream, version = replayed(record, claim)
        return Written(reply, self.position(stream, version), replayed=True)
