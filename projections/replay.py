"""The event store replayed on its own, never through Redis: for the audit and history.

The replay decodes events as the projector does and folds them with the pure fold
(projections/customer_view.py), so it says what the read model should hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, Notification

from projections.customer_record import read_customer
from projections.customer_view import fold
from projections.event_decoding import (
    CustomerChange,
    KeyChange,
    UnprojectableEventError,
    decode,
    event_time,
)
from projections.stored_fields import canonical_time

PAGE = 5000


def notifications(
    recorder: ApplicationRecorder, after: int = 0, upto: int | None = None
) -> Iterator[Notification]:
    """The notification log from after+1 to upto (inclusive), read in pages."""
    position = after
    while upto is None or position < upto:
        page = recorder.select_notifications(position + 1, PAGE, stop=upto)
        yield from page
        if len(page) < PAGE:
            return
        position = page[-1].id


def customer_changes(
    stream: Iterator[Notification], skips: set[int], unprojectable: list[int] | None = None
) -> Iterator[CustomerChange]:
    """Customer changes only; skipped and unprojectable events are left out (and listed)."""
    for notification in stream:
        if notification.id in skips:
            continue
        try:
            change = decode(notification)
        except UnprojectableEventError:
            if unprojectable is not None:
                unprojectable.append(notification.id)
            continue
        if type(change) is CustomerChange:
            yield change


def history(
    recorder: ApplicationRecorder,
    skips: set[int],
    *,
    customer_id: int | None = None,
    position: int | None = None,
    as_of: Any = None,
) -> dict[int, dict[str, Any]]:
    """The read model's documents as they were at a position or a moment (UTC datetime)."""
    moment = canonical_time(as_of) if as_of is not None else None
    stream: Iterator[Notification] = notifications(recorder, 0, position)
    if moment is not None:
        stream = (n for n in stream if (event_time(n) or "") <= moment)
    changes = customer_changes(stream, skips)
    if customer_id is not None:
        changes = (c for c in changes if c.customer_id == customer_id)
    records = fold(changes)
    return {cid: read_customer(cid, *record.fields()) for cid, record in sorted(records.items())}


def key_index(recorder: ApplicationRecorder, upto: int) -> dict[str, tuple[str, bool]]:
    """API key hash -> (role, revoked) from a replay (for checking the key index)."""
    index: dict[str, tuple[str, bool]] = {}
    for notification in notifications(recorder, 0, upto):
        try:
            change = decode(notification)
        except UnprojectableEventError:
            continue
        if isinstance(change, KeyChange):
            role = change.role if change.role is not None else index.get(change.key_hash, ("",))[0]
            index[change.key_hash] = (role, change.revoked)
    return index
