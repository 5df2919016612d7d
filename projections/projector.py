"""The projector: the notification log, in pages, into the Redis read model, exactly once.

Per page: decode every event, group the changes by customer, send one guarded script per
touched customer (and one for the API key index) in a pipeline, then record the page's
last position. Each script applies only the changes after the position its record has
already applied, so a crash anywhere — before, inside or after the pipeline, before or
after the position is recorded — only means a page is sent again, and nothing counts
twice. No atomic step spans two customers' keys, so this holds on Redis Cluster too.

A reader thread fetches, decodes and encodes the next page while this one is applied, so
the event store's, Python's and Redis's work overlap. The live loop that keeps a
projector following the store is projections.live_loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import ApplicationRecorder, IntegrityError

from contract.application import APPLICATION_NAME
from projections.dead_letters import is_skipped, record_dead_letter
from projections.event_decoding import UnprojectableEventError
from projections.generation import DROP_GRACE_SECONDS, claim_layout, current_generation
from projections.heartbeat import BEAT_SECONDS, Heartbeat
from projections.notification_log import Prefetch, Row, page_reader
from projections.page_commands import (
    FencedError,
    Fences,
    PartitionsRolledBackError,
    PreparedPage,
    encode_commands,
    execute,
    load_scripts,
    prepare_page,
)
from projections.partition_repair import partitions_behind, read_floors, replay_partitions
from projections.read_model import Keys, floor_field
from projections.redis_client import RedisClient
from projections.repair import ReadModelLostError, Repair, check_unchanged, read_marker
from projections.tracking import (
    RedisTrackingRecorder,
    SlicesFencedError,
    TrackingRolledBackError,
)
from projections.watermark import Watermark
from projections.worker_share import OwnedSlices, Share

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 5000
# Customers per pipeline round trip: bounds memory and the size of one write burst.
DEFAULT_CHUNK = 2000

# Fault injection points, in the order a page passes them (tests stop the projector there).
STEPS = ("before-apply", "mid-apply", "after-apply", "before-position", "after-position")

Fault = Callable[[str], None]


class Projector:
    """Catch-up projection of one application's notification log into Redis."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        client: RedisClient,
        keys: Keys,
        *,
        application_name: str = APPLICATION_NAME,
        generation: int | None = None,
        publish: bool = True,
        page_size: int = DEFAULT_PAGE_SIZE,
        chunk: int = DEFAULT_CHUNK,
        fault: Fault | None = None,
        on_page: Callable[[int, int], None] | None = None,
        drop_grace: float = DROP_GRACE_SECONDS,
        share: Share | None = None,
    ) -> None:
        """generation=None follows the current generation (and rebuilds' switches);
        drop_grace is how long the old generation stays after a repair's rebuild;
        share: this projector is one of several workers and applies just its slices."""
        self.recorder = recorder
        self._read = page_reader(recorder)
        self.client = client
        self.keys = keys
        self.application_name = application_name
        self.page_size = page_size
        self.chunk = chunk
        self.drop_grace = drop_grace
        self._follow = generation is None
        self._publish = publish
        self._fault = fault
        self._on_page = on_page
        self.wake = threading.Event()  # set by notify(): the live loop looks again at once
        self.blocked: UnprojectableEventError | None = None
        self.generation = 0
        self.tracking: RedisTrackingRecorder
        self.position = 0
        # Each partition's checkpoint as this projector last wrote (or found) it: the fence
        # its next page is sent with.
        self.fences: Fences = {}
        self.repair = Repair(client, keys)
        self.verified_at = float("-inf")  # when Redis was last found holding what we wrote
        # A page is being written and its position not yet recorded: if Redis turns out to
        # have lost data now, part of that page may have landed on what was left.
        self._page_unconfirmed = False
        self._heartbeat = Heartbeat(recorder, client, keys)
        # What this read model was given before, noted in the event store (a following
        # projector only: a rebuild's fills a new generation from nothing).
        self._watermark = Watermark(recorder, keys.prefix)
        self._floor = 0
        # A worker's: its slices (its position is theirs) and every slice's position.
        self.owned = OwnedSlices(share) if share is not None else None
        load_scripts(client)
        self._use_generation(generation or current_generation(client, keys))
        if self._follow:
            self._floor = self._watermark.read()

    # Public interface

    def notify(self) -> None:
        """Wake the live loop now (an append happened in this process)."""
        self.wake.set()

    def catch_up(self) -> int:
        """Apply everything recorded now; return the applied position.

        Raises UnprojectableEventError at a poison event (after applying what precedes it
        and recording it in the dead-letter list). A Redis found to hold less than it was
        given is repaired on the way by a replay (marked meanwhile); one that needs a
        rebuild raises ReadModelLostError, which the live loop carries out.
        """
        while True:
            try:
                return self._catch_up()
            except ReadModelLostError as lost:
                if lost.written_since:
                    raise
                self.start_repair(lost)

    def beat(self, *, every: float = BEAT_SECONDS) -> None:
        """Tell readers this projector runs, where it is and the store's head (lag)."""
        if not self._heartbeat.send(self.settled, every=every):
            return
        if self._follow and not self.repair.target:
            self._watermark.raise_to(self.settled)  # what Redis holds now: a floor for later

    def verify(self) -> None:
        """Check that Redis still holds what this projector wrote; adopt a repair marker.

        Raises ReadModelLostError if it does not (nothing was written onto it since).
        """
        self._check_unchanged()
        self._check_partitions()
        following = self.generation if self._follow else None
        self.repair.adopt(read_marker(self.client, self.keys), following)
        self.repair.finish_if_reached(self.settled)
        self.verified_at = time.monotonic()

    def start_repair(self, lost: ReadModelLostError) -> None:
        """Mark the loss; resume from what Redis holds, or leave a rebuild pending."""
        self._floor = 0  # the marker's target carries it from here
        rebuild = self.generation if lost.written_since and self._follow else None
        self.repair.begin(lost, rebuild)
        if lost.written_since:
            return
        if self._follow:
            self.client.set(self.keys.generation, str(self.generation), nx=True)
        self.position = lost.found
        if self.owned is not None:  # each slice from what Redis holds of it now
            self.position, self.fences = self._slice_positions()
        self.verified_at = time.monotonic()

    def adopt_rebuilt(self, generation: int) -> None:
        """Write `generation` from now on: a repair rebuilt it from the event store."""
        self.repair.rebuild_pending = False
        self._page_unconfirmed = False
        self._use_generation(generation)
        self.repair.finish_if_reached(self.settled)

    @property
    def settled(self) -> int:
        """The position every partition is applied up to, as far as this projector knows."""
        return self.position if self.owned is None else self.owned.all_slices

    # One page: prepared in the reader thread, applied here

    def _catch_up(self) -> int:
        if self._follow:
            self._follow_generation()
        while True:
            owned = self.owned
            if owned is not None:
                taken = owned.follow(self.client, self.keys, self.tracking, self.application_name)
                if taken is not None:
                    self.position, self.fences = taken
                if not owned.tokens:  # no slice of ours (yet): the others apply them all
                    owned.all_slices = self.tracking.max_tracking_id(self.application_name) or 0
                    return self.position
            generation = self.generation
            fences = dict(self.fences)  # the reader thread's own, moved on as it prepares
            only = tokens = key_index = None
            if owned is not None:
                only, tokens = owned.partitions, owned.partition_tokens
                key_index = owned.applies_key_index

            def prepare(
                page: Sequence[Row],
                fences: Fences = fences,
                share: tuple[Any, ...] = (only, tokens, key_index),
            ) -> PreparedPage:
                return prepare_page(
                    page, self.keys, self.generation, self._is_skipped, fences, *share
                )

            pages = Prefetch(self._read, self.position, self.page_size, prepare)
            try:
                for page in pages:
                    try:
                        self._project_page(page)
                    except PartitionsRolledBackError as rolled_back:
                        self._repair_partitions(rolled_back.found)
                        break  # read the page again, on the repaired partitions
                    except (FencedError, SlicesFencedError) as fenced:
                        assert owned is not None  # only workers' calls carry tokens
                        self.fences = owned.refused(fenced, self.fences)
                        break  # read on with the slices still ours
                    if self.generation != generation:
                        break  # a rebuild switched generations: read on from its position
                    if owned is not None and owned.changed:
                        break  # slices came or went: read on with the new share
                else:
                    return self.position
            finally:
                pages.close()

    def _is_skipped(self, position: int) -> bool:
        return is_skipped(self.client, self.keys, position)

    def _project_page(self, page: PreparedPage) -> None:
        self._step("before-apply")
        self._apply(page)
        self._step("after-apply")
        if page.last > self.position:
            self._step("before-position")
            self._record_position(page.last, page.partitions)
            self._step("after-position")
        self._page_unconfirmed = False
        if self._on_page is not None:
            self._on_page(self.position, page.events)
        if page.poison is not None:
            record_dead_letter(self.client, self.keys, page.poison)
            raise page.poison

    def _apply(self, page: PreparedPage) -> None:
        commands = page.commands
        if page.generation != self.generation:  # a switch since the page was prepared
            tokens = self.owned.partition_tokens if self.owned is not None else {}
            commands = encode_commands(
                self.keys, self.generation, page.customers, page.keys_ops,
                page.partitions, self.fences, page.last, tokens,
            )  # fmt: skip
        # Writing onto a Redis that lost data would leave guards ahead of what records hold.
        self._check_unchanged()
        self._page_unconfirmed = True
        for start in range(0, len(commands), self.chunk):
            if start:
                self._step("mid-apply")
            execute(self.client, self.keys, commands[start : start + self.chunk])
        for partition in page.partitions:
            self.fences[partition] = page.last

    def _check_unchanged(self) -> None:
        check_unchanged(
            self.client,
            self.keys,
            self.application_name,
            self.generation,
            max(self.settled, self._floor),
            follow=self._follow,
            page_unconfirmed=self._page_unconfirmed,
        )

    def _check_partitions(self) -> None:
        """Replay what partitions lost if their checkpoints went below what was written."""
        lost = partitions_behind(self.client, self.keys, self.generation, self.fences)
        if lost:
            self._repair_partitions(lost)

    def _repair_partitions(self, found: dict[int, int]) -> None:
        """Replay into the partitions that went back what they lost, up to our position."""
        logger.warning(
            "%d partition(s) of the read model went back (their node lost data), e.g. "
            "partition %d to position %d: replaying what they lost",
            len(found), *min(found.items()),
        )  # fmt: skip
        tokens = None
        if self.owned is not None:  # a worker replays its own partitions only, fenced
            tokens = self.owned.partition_tokens
            found = {p: at for p, at in found.items() if p in tokens}
        try:
            replay_partitions(
                self._read, self.client, self.keys, self.generation, found, self.position,
                self._is_skipped, self.fences, tokens,
            )  # fmt: skip
        except FencedError as fenced:
            assert self.owned is not None  # only workers' calls carry tokens
            self.fences = self.owned.refused(fenced, self.fences)

    def _record_position(self, position: int, partitions: Sequence[int] = ()) -> None:
        floors = [(floor_field(p), str(position)) for p in partitions]
        announce = True
        try:
            if self.owned is None:
                self.tracking.advance(
                    self.application_name, position, recorded=self.position, floors=floors
                )
            else:  # announced when every slice's position moved on
                announce = self.owned.record(
                    self.tracking, self.application_name, position,
                    recorded=self.position, floors=floors,
                )  # fmt: skip
        except TrackingRolledBackError as rolled_back:
            if self._follow and self._generation_switched():
                self._follow_generation()
                return
            reason = f"Redis lost data while a page was written: {rolled_back}"
            raise ReadModelLostError(
                rolled_back.found, self.position, reason, written_since=True
            ) from None
        except IntegrityError:
            # Another projector got further; its work and ours are the same (guarded).
            recorded = self.tracking.max_tracking_id(self.application_name) or 0
            self.position = max(self.position, recorded)
            return
        self._recorded(position, announce=announce)

    def _recorded(self, position: int, *, announce: bool = True) -> None:
        self.position = position
        # Two commands, not a pipeline: on a cluster PUBLISH has no key to route a
        # pipeline by, and the generation key lives on the meta keys' node anyway.
        if self._publish and announce:
            self.client.publish(self.keys.positions_channel, f"{self.generation}:{self.settled}")
        if self._follow:
            served = self.client.get(self.keys.generation)
            if served is not None and int(served) != self.generation:
                self._use_generation(int(served))
        if self.repair.target is not None:
            self.repair.finish_if_reached(self.settled)
        if self._follow:
            self.beat()  # throttled: at most once a second during a long catch-up

    # Generations

    def _follow_generation(self) -> int:
        if max(self.position, self._floor) and self.client.get(self.keys.generation) is None:
            self._check_unchanged()  # gone since we wrote: a loss, not a first start
        generation = current_generation(self.client, self.keys)
        if generation > self.generation:
            self._use_generation(generation)
        elif generation < self.generation:
            self._check_unchanged()  # went back: a restored copy, repaired from there
        return self.generation

    def _generation_switched(self) -> bool:
        value = self.client.get(self.keys.generation)
        return value is not None and int(value) > self.generation

    def _use_generation(self, generation: int) -> None:
        claim_layout(self.client, self.keys, generation)
        if self.generation:
            logger.info("projection now writes generation %d", generation)
        self.generation = generation
        self.tracking = RedisTrackingRecorder(self.client, self.keys, generation)
        self.position = self.tracking.max_tracking_id(self.application_name) or 0
        self.fences = read_floors(self.client, self.keys, generation)
        if self.owned is not None:
            self.owned.reclaim(self.client, self.keys, self.tracking)
            self.position, self.fences = self._slice_positions()

    def _slice_positions(self) -> tuple[int, Fences]:
        assert self.owned is not None
        return self.owned.positions(self.client, self.keys, self.tracking, self.application_name)

    def _step(self, name: str) -> None:
        if self._fault is not None:
            self._fault(name)
