"""Redis that lost what the projector wrote: how it is told, marked and repaired.

Redis can lose acknowledged writes: restarted with no AOF (or an AOF cut short), restored
from an older copy, failed over to a replica that lagged, or flushed. The projector knows
the position it recorded last and compares it with what Redis holds before each page it
writes, when it records the page (in the same script) and at least once a second when
idle. Memory is never trusted over Redis: what Redis holds is where it resumes.

On a loss the projector sets a repair marker naming the reason and the position the read
model must reach again; reads answer 503 while it stands (the key index may be missing a
revocation), and the projector removes it once it is back there. If nothing was written
onto the changed Redis, replaying from what it holds is exact. If a page was (a flush
between the check and the writes), customers of that page may hold a guard ahead of their
history, so the read model is rebuilt into a fresh generation instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from projections.read_model import Keys
from projections.scripts import clear_repair, mark_repair

# Sent on the positions channel when a loss is found, so readers stop at once.
REPAIR_ANNOUNCEMENT = "repair"


class ReadModelLostError(Exception):
    """Redis holds less than the projector wrote to it."""

    def __init__(
        self,
        found: int,
        recorded: int,
        reason: str,
        *,
        written_since: bool,
    ) -> None:
        super().__init__(reason)
        self.found = found  # the position Redis still holds (0: nothing)
        self.recorded = recorded  # the position the projector had recorded
        self.reason = reason
        self.written_since = written_since  # a page landed on what was left: rebuild


@dataclass(frozen=True)
class RepairMarker:
    reason: str
    target: int
    detected_at: str
    rebuild: int | None = None  # the generation to replace by a rebuild, if one is needed


def mark(
    client: redis.Redis, keys: Keys, reason: str, target: int, rebuild: int | None = None
) -> None:
    """Set (or widen) the repair marker: reads answer 503 until `target` is applied again
    and, with `rebuild`, until a generation newer than that one is served."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    generation = "" if rebuild is None else str(rebuild)
    mark_repair(client, [keys.repair], [reason, str(target), now, generation])
    client.publish(keys.positions_channel, REPAIR_ANNOUNCEMENT)


def clear_if_repaired(client: redis.Redis, keys: Keys, position: int) -> bool:
    """Remove the marker if `position` reached its target; True if it was removed."""
    return bool(clear_repair(client, [keys.repair, keys.generation], [str(position)]))


def read_marker(client: redis.Redis, keys: Keys) -> RepairMarker | None:
    return parse_marker(client.hgetall(keys.repair))


def parse_marker(raw: Any) -> RepairMarker | None:
    """The marker from HGETALL's reply (a dict, or a flat list from the lean link)."""
    if not raw:
        return None
    if isinstance(raw, list):
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    fields = {_text(name): _text(value) for name, value in raw.items()}
    try:
        target = int(fields.get("target", ""))
    except ValueError:
        target = 0
    rebuild = fields.get("rebuild", "")
    return RepairMarker(
        fields.get("reason", "unknown"),
        target,
        fields.get("detected_at", ""),
        int(rebuild) if rebuild.isdigit() else None,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
