"""A partition whose node lost data: found by its checkpoint, repaired by a replay of it.

Each partition's checkpoint lives in its own slot, beside its customers, and the tracking
hash on the meta node keeps the checkpoint each page confirmed as the partition's floor.
A node that comes back with less than it acknowledged (an AOF cut short, a failover to a
replica that lagged) takes a partition's customers and checkpoint back together, so the
checkpoint below its floor (or below the fence the projector sends) says exactly what
was lost: the partition's events after it. The replay applies just those partitions'
changes, guarded as always, up to the projector's position, then moves their checkpoints
there. Readers answer 503 for a partition while its checkpoint is below its floor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from projections.notification_log import ReadPage
from projections.page_commands import Fences, checkpoint_command, execute, prepare_page
from projections.read_model import PARTITIONS, Keys, floor_field
from projections.redis_client import RedisClient

REPLAY_PAGE = 5000
_FLOOR_FIELDS = {floor_field(p).encode(): p for p in range(PARTITIONS)}


def floors_from(tracking: Mapping[Any, Any]) -> Fences:
    """partition -> floor, from a tracking hash's fields."""
    floors: Fences = {}
    for name, value in tracking.items():
        field = name.encode() if isinstance(name, str) else name
        partition = _FLOOR_FIELDS.get(field)
        if partition is not None:
            floors[partition] = int(value)
    return floors


def read_floors(client: RedisClient, keys: Keys, generation: int) -> Fences:
    return floors_from(client.hgetall(keys.tracking(generation)))


def partitions_behind(
    client: RedisClient, keys: Keys, generation: int, fences: Fences
) -> dict[int, int]:
    """partition -> the checkpoint it holds, for those holding less than their fence."""
    wanted = list(fences)
    if not wanted:
        return {}
    pipe = client.pipeline(transaction=False)
    for partition in wanted:
        pipe.get(keys.checkpoint(generation, partition))
    held = {p: int(v or 0) for p, v in zip(wanted, pipe.execute(), strict=True)}
    return {p: checkpoint for p, checkpoint in held.items() if checkpoint < fences[p]}


def replay_partitions(
    read: ReadPage,
    client: RedisClient,
    keys: Keys,
    generation: int,
    found: dict[int, int],
    upto: int,
    is_skipped: Callable[[int], bool],
    known: Fences,
    tokens: Mapping[int, int] | None = None,
) -> None:
    """Apply to the partitions in `found` (each holding what `found` says) every change of
    theirs up to `upto`, then move their checkpoints, and `known` fences, to `upto`."""
    fences = dict(found)
    only = frozenset(found)
    position = min(found.values())
    while position < upto:
        rows = [row for row in read(position, REPLAY_PAGE) if row[0] <= upto]
        if not rows:
            break
        page = prepare_page(rows, keys, generation, is_skipped, fences, only, tokens)
        if page.commands:
            execute(client, keys, page.commands)
        if page.poison is not None:
            raise page.poison
        position = rows[-1][0]
    execute(
        client,
        keys,
        [
            checkpoint_command(keys, generation, p, upto, fences[p], (tokens or {}).get(p, 0))
            for p in sorted(found)
        ],
    )
    for partition in found:
        known[partition] = max(upto, fences[partition])
