"""What the read path knows without asking Redis: generation, applied position, API keys.

A background task refreshes all three every REFRESH_SECONDS over the shared
link, and a pub/sub listener moves the position forward the moment the projector
announces a page. Revoking a key therefore takes effect within one refresh interval,
and no request pays a Redis round trip just to authenticate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from contract.application import APPLICATION_NAME
from projections.partition_repair import floors_from
from projections.read_model import (
    LAYOUT,
    LAYOUT_FIELD,
    PARTITIONS,
    Keys,
    partition_of,
    slice_field,
    slice_of,
)
from projections.repair import REPAIR_ANNOUNCEMENT, RepairMarker, parse_marker
from projections.status import status_from
from read_side.positions_listener import listen_for_positions
from read_side.redis_link import CommandLink, RedisReplyError, StoreUnavailableError
from read_side.state_records import (
    FIRST_GENERATION,
    KeyGrant,
    as_int,
    as_text_dict,
    generation_of,
    parse_grants,
)

log = logging.getLogger("customers.read")

# The read side's key cache, stated once: refreshed this often, and never trusted older
# than MAX_STALENESS_SECONDS (reads answer 503 instead), so a revocation is honoured
# within that bound.
REFRESH_SECONDS = 0.25
MAX_STALENESS_SECONDS = 1.0

# The tracking hash and the API keys in one atomic read (both under the meta hash tag), so
# the keys are known to include everything up to the position read with them.
READ_META = """
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
"""


class ProjectionState:
    """Cached generation, applied position and API keys of one read model prefix."""

    def __init__(
        self,
        link: CommandLink,
        keys: Keys,
        *,
        redis_url: str,
        upstream: str = APPLICATION_NAME,
        refresh_interval: float = REFRESH_SECONDS,
        max_staleness: float = MAX_STALENESS_SECONDS,
    ) -> None:
        self._link = link
        self._keys = keys
        self._redis_url = redis_url
        self._upstream = upstream
        self._refresh_interval = refresh_interval
        self._max_staleness = max_staleness
        self.generation = FIRST_GENERATION
        self.position = 0
        self.grants: dict[str, KeyGrant] = {}
        # The applied position the cached keys are known to include (read before them).
        self.grants_position = 0
        self.refreshed_at = float("-inf")
        # The highest position and generation seen: Redis holding less later means it lost
        # data. After such a loss the cached keys are trusted again only once they were
        # read at `keys_floor` or later (announcements alone may lift the position first).
        self.high_water = 0
        self.high_generation = FIRST_GENERATION
        self.keys_floor = 0
        self.repair: RepairMarker | None = None
        self.layout: str | None = None  # as the generation records it (None: not recorded)
        # Partitions whose checkpoint is below its floor: their node lost data, and the
        # projector is replaying it; their customers are answered 503 meanwhile.
        self.lost_partitions: frozenset[int] = frozenset()
        self.floors: dict[int, int] = {}
        # The running projector's heartbeat (None: none seen lately) and dead letters.
        self.projector: dict[str, str] | None = None
        self.dead_letters = 0
        self._advance_waiters: set[asyncio.Future[None]] = set()
        # The link connection the cached state was read over: another one must re-read it.
        self.verified_connection = -1
        self._recheck: asyncio.Task[None] | None = None
        link.on_connect = self.recheck_soon
        self._tasks: list[asyncio.Task[None]] = []
        self._switching: asyncio.Task[None] | None = None

    @property
    def is_fresh(self) -> bool:
        """True while the cached state is recent (revocation bound) and read over the
        link's current connection (a new one may reach a Redis that restarted)."""
        return (
            self.verified_connection == self._link.connections
            and time.monotonic() - self.refreshed_at <= self._max_staleness
        )

    def recheck_soon(self) -> None:
        """Read the state again now, not at the next interval (a reconnect, a repair)."""
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.get_running_loop().create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        with contextlib.suppress(StoreUnavailableError, RedisReplyError):
            await self.refresh()

    async def position_went_back(self, generation: int, position: int, customer_id: int) -> bool:
        """Whether Redis now holds less than `position` of `generation` (read before), or
        less than its floor in the customer's partition."""
        partition = partition_of(customer_id)
        tracking, checkpoint = await asyncio.gather(
            self._link.execute("HGET", self._keys.tracking(generation), self._upstream),
            self._link.execute("GET", self._keys.checkpoint(generation, partition)),
        )
        if as_int(tracking) >= position and as_int(checkpoint) >= self.floors.get(partition, 0):
            return False
        self.recheck_soon()  # the refresh records the loss for every later request
        return True

    async def start(self) -> None:
        try:
            await self.refresh()
        except (StoreUnavailableError, RedisReplyError) as error:  # serve 503 until it is back
            log.warning("read model not reachable at start: %s", error)
        self._tasks = [
            asyncio.create_task(self._refresh_forever(), name="read-model-refresh"),
            asyncio.create_task(
                listen_for_positions(self._redis_url, self._keys.positions_channel, self.announce),
                name="read-model-positions",
            ),
        ]

    async def stop(self) -> None:
        if self._switching is not None:
            self._tasks.append(self._switching)
        if self._recheck is not None:
            self._tasks.append(self._recheck)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def trouble(self) -> str | None:
        """Why the read model must not be served now (it lost data), or None."""
        if self.repair is not None:
            return f"repairing: {self.repair.reason}"
        if self.layout is not None and self.layout != LAYOUT:
            return f"the read model is in layout {self.layout!r}; this version reads {LAYOUT!r}"
        if self.position < self.high_water or self.generation < self.high_generation:
            return (
                f"Redis holds position {self.position} of generation {self.generation}, "
                f"below the {self.high_water} of generation {self.high_generation} served "
                "before; waiting for the projector to repair it"
            )
        if self.grants_position < self.keys_floor:
            return "the API keys have not been read again since Redis lost data"
        return None

    async def refresh(self) -> None:
        """Read generation, position and keys from Redis (StoreUnavailableError if down)."""
        started = time.monotonic()
        # Redis only ever holds more than what was seen before these reads were sent; less
        # than this snapshot means it lost data (an announcement during them is no loss).
        seen_generation, seen_position = self.generation, self.position
        generation = generation_of(await self._link.execute("GET", self._keys.generation))
        connection = self._link.connections
        tracking_key, keys_key = self._keys.tracking(generation), self._keys.api_keys(generation)
        checkpoints_read = asyncio.gather(
            *(
                self._link.execute("GET", self._keys.checkpoint(generation, partition))
                for partition in range(PARTITIONS)
            ),
            return_exceptions=True,  # a master down: its partitions unknown, the rest served
        )
        meta, repair, projector, letters, skipped = await asyncio.gather(
            self._link.execute("EVAL", READ_META, 2, tracking_key, keys_key),
            self._link.execute("HGETALL", self._keys.repair),
            self._link.execute("HGETALL", self._keys.projector),
            self._link.execute("LRANGE", self._keys.dead_letters, 0, -1),
            self._link.execute("HKEYS", self._keys.skips),
        )
        checkpoints = await checkpoints_read
        tracking_flat, grants = meta
        tracking = dict(zip(tracking_flat[::2], tracking_flat[1::2], strict=True))
        self.projector = as_text_dict(projector) or None
        self.dead_letters = status_from(0, 0, 0, letters, skipped)["dead_letters"]
        self.grants = parse_grants(grants)
        self.grants_position = as_int(tracking.get(self._upstream.encode()))
        self.floors = floors_from(tracking)
        self.lost_partitions = frozenset(
            partition
            for partition, floor in self.floors.items()
            if _held(checkpoints[partition]) < floor
        )
        raw_layout = tracking.get(LAYOUT_FIELD.encode())
        layout = raw_layout.decode() if raw_layout is not None else None
        if layout != self.layout and layout not in (None, LAYOUT):
            log.error(
                "generation %d of the read model is in layout %r; this version reads %r: "
                "answering 503 until it is rebuilt by this version",
                generation, layout, LAYOUT,
            )  # fmt: skip
        self.layout = layout
        self.repair = parse_marker(repair)
        if generation == seen_generation and self.grants_position < seen_position:
            # Redis went back (the projector says why and repairs): follow it down, so
            # nothing waiting for a later position is told it was reached.
            self.position = self.grants_position
            self.keys_floor = max(self.keys_floor, self.high_water)
        elif generation < seen_generation:
            self.keys_floor = max(self.keys_floor, self.high_water)
        self._advance(generation, self.grants_position)
        self.refreshed_at = started
        self.verified_connection = connection

    async def wait_for(self, position: int, timeout: float, customer_id: int) -> int | None:
        """Wait until the customer's record reflects `position`: the read model applied it,
        or the customer's partition did (its checkpoint, or its slice's position when
        workers share the projection). The position reached; None if the bound runs out."""
        deadline = time.monotonic() + timeout
        while self.position < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # Poll as well as listen: a missed announcement must not cost the whole wait.
            await self._next_advance(min(remaining, 0.05))
            if self.position < position:
                with contextlib.suppress(StoreUnavailableError, RedisReplyError):
                    await self._refresh_position()
                    reached = await self._partition_position(customer_id)
                    if reached >= position:
                        return reached
        return self.position

    def _next_advance(self, seconds: float) -> asyncio.Future[None]:
        """Done at the next advance, or after `seconds`. A plain future, not
        asyncio.timeout(): a direct read runs outside any asyncio Task (see
        runtime/http_protocol.py), where that cannot be used."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _settle, waiter)
        self._advance_waiters.add(waiter)

        def forget(_: asyncio.Future[None]) -> None:
            timer.cancel()
            self._advance_waiters.discard(waiter)

        waiter.add_done_callback(forget)
        return waiter

    async def _partition_position(self, customer_id: int) -> int:
        """How far the customer's partition is applied: its checkpoint (moved after the
        partition's changes in every page) or its slice's recorded position."""
        generation = self.generation
        partition = partition_of(customer_id)
        slice_position, checkpoint = await asyncio.gather(
            self._link.execute(
                "HGET", self._keys.tracking(generation), slice_field(slice_of(partition))
            ),
            self._link.execute("GET", self._keys.checkpoint(generation, partition)),
        )
        if generation != self.generation:
            return 0  # switched meanwhile: those were the old generation's
        return max(as_int(slice_position), as_int(checkpoint))

    def announce(self, message: bytes | str) -> None:
        """Apply a "{generation}:{position}" announcement from the positions channel."""
        text = message.decode() if isinstance(message, bytes) else message
        if text == REPAIR_ANNOUNCEMENT:
            # The projector found Redis lost data: stop serving before it writes again.
            self.repair = RepairMarker("announced by the projector", 0, "")
            self.recheck_soon()
            return
        generation_text, _, position_text = text.partition(":")
        try:
            generation, position = int(generation_text), int(position_text)
        except ValueError:
            return
        if generation == self.generation:
            self._advance(generation, position)
        elif generation > self.generation and self._switching is None:
            # A rebuild switched generations: follow now, with that generation's keys too.
            self._switching = asyncio.get_running_loop().create_task(self._follow_switch())

    async def _follow_switch(self) -> None:
        try:
            await self.refresh()
        except (StoreUnavailableError, RedisReplyError) as error:
            log.warning("could not follow a generation switch yet: %s", error)
        finally:
            self._switching = None

    async def _refresh_position(self) -> None:
        generation = self.generation
        tracking = await self._link.execute("HGET", self._keys.tracking(generation), self._upstream)
        if generation == self.generation:
            self._advance(generation, as_int(tracking))

    def _advance(self, generation: int, position: int) -> None:
        """Move to a position; it only grows within a generation (a lower bound anyway)."""
        if generation != self.generation:
            self.generation, self.position = generation, position
            changed = True
        else:
            changed = position > self.position
            if changed:
                self.position = position
        if changed:
            self.high_water = max(self.high_water, self.position)
            self.high_generation = max(self.high_generation, self.generation)
            for waiter in list(self._advance_waiters):
                _settle(waiter)

    async def _refresh_forever(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except (StoreUnavailableError, RedisReplyError) as error:
                if not failing:  # once per outage, not four times a second
                    log.warning("read model unreachable, answering 503 until it is back: %s", error)
                failing = True
            else:
                if failing:
                    log.warning("read model reachable again")
                failing = False


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _held(checkpoint: bytes | BaseException | None) -> int:
    """A partition's checkpoint as read; -1 if its node did not answer (not known)."""
    return -1 if isinstance(checkpoint, BaseException) else as_int(checkpoint)
