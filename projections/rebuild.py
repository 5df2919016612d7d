"""Blue/green rebuilds: replay into a fresh generation, switch atomically, drop the old one.

Reads keep being served from the current generation while the new one fills. The switch
is one script on the meta keys (one hash tag) and only happens once the new generation
has applied at least as much as the current one, so no read after the switch misses a
customer the old generation had. A live projector notices the switch at its next page.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import ApplicationRecorder

from contract.application import APPLICATION_NAME
from projections.generation import DROP_GRACE_SECONDS, current_generation
from projections.projector import Projector
from projections.read_model import SLICES, Keys
from projections.redis_client import RedisClient
from projections.repair import read_marker
from projections.scripts import switch_generation
from projections.worker_share import FixedShare

logger = logging.getLogger(__name__)

LOCK_SECONDS = 3600
MAX_SWITCH_ATTEMPTS = 20


class RebuildError(Exception):
    """A rebuild could not start or finish (another one runs, or a switch raced)."""


@dataclass(frozen=True)
class RebuildResult:
    old_generation: int
    new_generation: int
    position: int
    events: int
    seconds: float  # replaying and switching; the drop after the grace period not included


Progress = Callable[[int, int, int], None]  # (position, head, events read so far)
# Fills a new generation with several workers, each its slices; returns the events read.
Fill = Callable[[int], int]


def rebuild(
    recorder: ApplicationRecorder,
    client: RedisClient,
    keys: Keys,
    *,
    progress: Progress | None = None,
    page_size: int = 5000,
    drop_grace: float = DROP_GRACE_SECONDS,
    application_name: str = APPLICATION_NAME,
    fill: Fill | None = None,
) -> RebuildResult:
    """Rebuild the read model from the event store into a new generation and switch to it.

    fill: workers fill the new generation first (each applies its slices, to the head);
    this process then applies what came after and switches."""
    lock = f"{{{keys.prefix}}}:rebuild-lock"
    token = f"{os.getpid()}:{time.time_ns()}"
    if not client.set(lock, token, nx=True, ex=LOCK_SECONDS):
        raise RebuildError("another rebuild is running (lock held)")
    try:
        return _rebuild(
            recorder, client, keys, progress, page_size, drop_grace, application_name, fill
        )
    finally:
        if client.get(lock) == token.encode():
            client.delete(lock)


def _rebuild(
    recorder: ApplicationRecorder,
    client: RedisClient,
    keys: Keys,
    progress: Progress | None,
    page_size: int,
    drop_grace: float,
    application_name: str,
    fill: Fill | None = None,
) -> RebuildResult:
    started = time.monotonic()
    old = current_generation(client, keys)
    new = old + 1
    drop_generation(client, keys, new)  # leftovers of an interrupted rebuild
    head = recorder.max_notification_id() or 0
    events = 0

    def on_page(position: int, count: int) -> None:
        nonlocal events
        events += count
        if progress is not None:
            progress(position, max(head, position), events)

    if fill is not None:
        events = fill(new)
    projector = Projector(
        recorder,
        client,
        keys,
        application_name=application_name,
        generation=new,
        publish=False,
        page_size=page_size,
        on_page=on_page,
        # After workers, go on slice by slice: each is recorded at its own position.
        share=FixedShare(frozenset(range(SLICES))) if fill is not None else None,
    )
    for _ in range(MAX_SWITCH_ATTEMPTS):
        projector.catch_up()
        result = switch_generation(
            client,
            [keys.generation, keys.tracking(old), keys.tracking(new)],
            [str(old), str(new), application_name, keys.positions_channel],
        )
        assert isinstance(result, int)
        if result >= 0:
            break
        # The live projector got further meanwhile: catch up with it and try again.
        head = recorder.max_notification_id() or 0
    else:
        raise RebuildError("the live projection kept moving ahead; try again")
    seconds = time.monotonic() - started
    logger.info("read model switched to generation %d at position %d", new, result)
    time.sleep(drop_grace)
    drop_generation(client, keys, old)
    return RebuildResult(old, new, result, events, seconds)


def fill_slices(
    recorder: ApplicationRecorder,
    client: RedisClient,
    keys: Keys,
    generation: int,
    slices: frozenset[int],
    *,
    page_size: int = 5000,
    on_page: Callable[[int, int], None] | None = None,
) -> int:
    """Apply the whole event store to these slices of a new generation (one of a
    rebuild's workers); returns the events read."""
    events = 0

    def count(position: int, page_events: int) -> None:
        nonlocal events
        events += page_events
        if on_page is not None:
            on_page(position, page_events)

    Projector(
        recorder,
        client,
        keys,
        generation=generation,
        publish=False,
        page_size=page_size,
        on_page=count,
        share=FixedShare(slices),
    ).catch_up()
    return events


def rebuild_for_repair(projector: Projector) -> None:
    """The rebuild a repair found necessary, unless another projector did it meanwhile."""
    client, keys = projector.client, projector.keys
    marker = read_marker(client, keys)
    current = int(client.get(keys.generation) or 0)
    if marker is None or marker.rebuild is None or marker.rebuild < current:
        projector.repair.rebuild_pending = False
        return
    if current < marker.rebuild:
        # Flushed, or an older copy: the rebuild must land above every generation
        # readers have served, so it starts from the damaged one's number.
        client.set(keys.generation, str(marker.rebuild))
    result = rebuild(
        projector.recorder,
        client,
        keys,
        drop_grace=projector.drop_grace,
        application_name=projector.application_name,
    )
    projector.adopt_rebuilt(result.new_generation)


def drop_generation(client: RedisClient, keys: Keys, generation: int) -> int:
    """Delete one generation's keys (never the current one); returns how many went."""
    if generation == current_generation(client, keys):
        raise RebuildError(f"generation {generation} is the one being served")
    dropped = 0
    batch: list[bytes] = []
    for pattern in keys.generation_patterns(generation):
        for key in client.scan_iter(match=pattern, count=2000):
            if not keys.is_generation_key(key, generation):
                continue  # another prefix that starts like ours
            batch.append(key)
            if len(batch) >= 1000:
                dropped += int(client.unlink(*batch))
                batch.clear()
    if batch:
        dropped += int(client.unlink(*batch))
    dropped += int(client.unlink(keys.api_keys(generation), keys.tracking(generation)))
    return dropped
