"""Poison events: the dead-letter list, and operators' decisions to step over one.

Both live in Redis as JSON: {prefix}:dead-letters lists each event the projection stopped
at, {prefix}:skips maps a position to the decision to skip it. The projector steps over a
skipped event; the audit and the status leave it out.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from projections.read_model import Keys
from projections.redis_client import RedisClient

# The read side counts dead letters too, and need not import the event decoding for it.
if TYPE_CHECKING:
    from projections.event_decoding import UnprojectableEventError

logger = logging.getLogger(__name__)


def record_dead_letter(client: RedisClient, keys: Keys, poison: UnprojectableEventError) -> None:
    """List the event the projection stopped at (once) and tell the operator what to do."""
    recorded = client.lrange(keys.dead_letters, 0, -1)
    if any(json.loads(entry).get("position") == poison.position for entry in recorded):
        return
    logger.error(
        "projection stopped at position %d (%s): %s; inspect it, then run "
        "`customers project --skip %d` to step over it",
        poison.position,
        poison.topic,
        poison.reason,
        poison.position,
    )
    entry = {
        "position": poison.position,
        "topic": poison.topic,
        "reason": poison.reason,
        "at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    client.rpush(keys.dead_letters, json.dumps(entry))


def record_skip(client: RedisClient, keys: Keys, position: int, operator: str) -> dict[str, Any]:
    """Record an operator's decision to step over a dead-lettered event; returns the record.

    Raises ValueError when the position is not an unskipped dead letter.
    """
    letters = [json.loads(entry) for entry in client.lrange(keys.dead_letters, 0, -1)]
    letter = next((entry for entry in letters if entry.get("position") == position), None)
    if letter is None:
        raise ValueError(f"position {position} is not in the dead-letter list")
    if client.hexists(keys.skips, str(position)):
        raise ValueError(f"position {position} is skipped already")
    decision = {
        "position": position,
        "topic": letter.get("topic"),
        "reason": letter.get("reason"),
        "skipped_by": operator,
        "skipped_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    if not client.hsetnx(keys.skips, str(position), json.dumps(decision)):
        raise ValueError(f"position {position} is skipped already")
    logger.warning("operator %s skipped the event at position %d", operator, position)
    return decision


def is_skipped(client: RedisClient, keys: Keys, position: int) -> bool:
    return bool(client.hexists(keys.skips, str(position)))


def skipped_positions(client: RedisClient, keys: Keys) -> set[int]:
    return {int(position) for position in client.hkeys(keys.skips)}


def dead_letters(client: RedisClient, keys: Keys) -> list[dict[str, Any]]:
    """Every dead letter with who skipped it and when (both None while not skipped)."""
    letters = [json.loads(entry) for entry in client.lrange(keys.dead_letters, 0, -1)]
    skips = {
        int(position): json.loads(decision)
        for position, decision in client.hgetall(keys.skips).items()
    }
    for letter in letters:
        decision = skips.get(letter.get("position"))
        letter["skipped_by"] = None if decision is None else decision.get("skipped_by")
        letter["skipped_at"] = None if decision is None else decision.get("skipped_at")
    return letters


def unresolved(letters: list[Any], skipped: list[Any]) -> int:
    """How many dead letters are not skipped, from raw LRANGE and HKEYS replies."""
    skipped_positions = {int(value) for value in skipped}
    return sum(1 for entry in letters if json.loads(entry).get("position") not in skipped_positions)
