"""Copy one event store into another (SQLite into PostgreSQL), resumably, in order.

Every stored event is copied as it is (originator, version, topic, state), idempotency
records included, in the source's position order, a page per transaction. The target's
positions follow that order; their numbers may differ, which is why the read model is
rebuilt afterwards. A run that stopped is resumed where the target ends: the target's
last event is looked up in the source and copying goes on after it; a target holding an
event the source does not have is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, StoredEvent

from write_side.store_adapter.queries import position_of

PAGE = 1000

Progress = Callable[[int, int], None]  # (source position copied up to, source head)


class MigrationError(Exception):
    """The target cannot continue the source (it holds events the source has not)."""


@dataclass(frozen=True)
class MigrationResult:
    resumed_after: int  # the source position the target held already
    copied: int  # events copied by this run
    source_head: int
    target_head: int


def migrate(
    source: ApplicationRecorder,
    target: ApplicationRecorder,
    progress: Progress | None = None,
    page: int = PAGE,
) -> MigrationResult:
    """Copy what `target` lacks of `source`; safe to run again (it resumes)."""
    start = resume_position(source, target)
    head = source.max_notification_id() or 0
    position, copied = start, 0
    while position < head:
        notifications = source.select_notifications(position + 1, page, stop=head)
        if not notifications:
            break
        target.insert_events(
            [
                StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
                for n in notifications
            ]
        )
        position = notifications[-1].id
        copied += len(notifications)
        if progress is not None:
            progress(position, head)
    return MigrationResult(start, copied, head, target.max_notification_id() or 0)


def resume_position(source: ApplicationRecorder, target: ApplicationRecorder) -> int:
    """The source position of the target's last event (0 for an empty target)."""
    last = target.max_notification_id()
    if not last:
        return 0
    [event] = target.select_notifications(last, 1)
    originator = event.originator_id
    if not isinstance(originator, UUID):
        originator = UUID(str(originator))
    found = position_of(source, originator, event.originator_version)
    same = found is not None and [
        (n.topic, n.state) for n in source.select_notifications(found, 1)
    ] == [(event.topic, event.state)]
    if found is None or not same:
        raise MigrationError(
            f"the target's last event (position {last}) is not in the source: it is not a "
            "copy of this store; migrate into an empty store"
        )
    return found
