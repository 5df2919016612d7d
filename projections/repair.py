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

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from projections.read_model import Keys
from projections.redis_client import RedisClient
from projections.scripts import clear_repair, mark_repair

logger = logging.getLogger(__name__)

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
    client: RedisClient, keys: Keys, reason: str, target: int, rebuild: int | None = None
) -> None:
    """Set (or widen) the repair marker: reads answer 503 until `target` is applied again
    and, with `rebuild`, until a generation newer than that one is served."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    generation = "" if rebuild is None else str(rebuild)
    mark_repair(client, [keys.repair], [reason, str(target), now, generation])
    client.publish(keys.positions_channel, REPAIR_ANNOUNCEMENT)


def clear_if_repaired(client: RedisClient, keys: Keys, position: int) -> bool:
    """Remove the marker if `position` reached its target; True if it was removed."""
    return bool(clear_repair(client, [keys.repair, keys.generation], [str(position)]))


def read_marker(client: RedisClient, keys: Keys) -> RepairMarker | None:
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


def check_unchanged(
    client: RedisClient,
    keys: Keys,
    application_name: str,
    generation: int,
    written: int,
    *,
    follow: bool,
    page_unconfirmed: bool,
) -> None:
    """Raise ReadModelLostError if Redis holds less than `written` in `generation`.

    A projector following the served generation (follow) also takes a generation key gone
    or gone back as a loss; `page_unconfirmed`: a page is being written onto it now.
    """
    if written == 0:
        return  # nothing recorded yet, so nothing to lose
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.generation)
    pipe.hget(keys.tracking(generation), application_name)
    generation_raw, tracking_raw = pipe.execute()
    if follow and generation_raw is not None and int(generation_raw) > generation:
        return  # a rebuild switched generations; the page's record follows it
    found = int(tracking_raw or 0)
    if follow and generation_raw is not None and int(generation_raw) < generation:
        reason = (
            f"Redis serves generation {int(generation_raw)}, older than the "
            f"{generation} written (restored from a copy taken before a rebuild)"
        )
        # Readers have served the newer generation: only a newer one still can be.
        raise ReadModelLostError(found, written, reason, written_since=True)
    if follow and generation_raw is None:
        reason = "Redis holds no read model (restarted empty, or flushed)"
    elif found < written:
        reason = (
            f"Redis holds position {found}, below the {written} recorded "
            "(restarted from an older copy, or it lost writes)"
        )
    else:
        return
    raise ReadModelLostError(found, written, reason, written_since=page_unconfirmed)


class Repair:
    """A repair as one projector sees it: the position to reach again, since when, how."""

    def __init__(self, client: RedisClient, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self.target: int | None = None  # None: no repair under way
        self.started = 0.0
        self.rebuild_pending = False  # what is left cannot be replayed onto: rebuild it

    def begin(self, lost: ReadModelLostError, rebuild: int | None) -> None:
        """Mark the loss (reads answer 503 from now on) and log how it will be repaired."""
        target = max(lost.recorded, self.target or 0)
        mark(self._client, self._keys, lost.reason, target, rebuild)
        if self.target is None:
            self.started = time.monotonic()
        self.target = target
        if lost.written_since:
            logger.error(
                "read model lost data: %s; what is left cannot be replayed onto (a page "
                "landed on it, or readers served a newer generation), so it is rebuilt from "
                "the event store in a new generation; reads answer 503 until position %d "
                "is applied again",
                lost.reason,
                target,
            )
            self.rebuild_pending = True
            return
        logger.error(
            "read model lost data: %s; resuming from position %d, reads answer 503 until "
            "position %d is applied again",
            lost.reason,
            lost.found,
            target,
        )

    def adopt(self, marker: RepairMarker | None, following: int | None) -> None:
        """Take up the marker in Redis, set here or by another projector, maybe earlier.

        `following`: the generation this projector writes if it follows the served one.
        """
        if marker is None:
            self.target = None
            return
        if self.target is None:
            self.target, self.started = marker.target, time.monotonic()
        if marker.rebuild is not None and following is not None and following <= marker.rebuild:
            self.rebuild_pending = True

    def finish_if_reached(self, position: int) -> None:
        """Remove the marker once `position` is back at the target: reads are served again."""
        target = self.target
        if target is None or position < target:
            return
        if clear_if_repaired(self._client, self._keys, position):
            logger.warning(
                "read model repaired: position %d applied again, %.1f s after the loss "
                "was found; reads are served again",
                position,
                time.monotonic() - self.started,
            )
        self.target = None
