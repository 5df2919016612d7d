"""The slices of the read model one worker applies, and the fencing tokens it holds them by.

Several workers share the projection by slices of its partitions (read_model.SLICES of
them): each worker reads the whole log and applies only its slices' customers, records
each slice's position, and the application's position becomes the lowest slice's. A
worker takes a slice with a fencing token newer than any before it and writes the token
beside each of the slice's partitions (and in the tracking hash) before applying
anything: from then on a worker still holding an older token — one that hung, was taken
for dead and woke up — has every call refused (FENCED) and changes nothing.

Who holds which slice is decided elsewhere (projections/worker_group.py, leases in
PostgreSQL; or a fixed split for a rebuild); a Share is how the projector asks.
"""

from __future__ import annotations

import logging
from typing import Protocol

from projections.page_commands import FencedError, Fences
from projections.partition_repair import read_floors
from projections.read_model import Keys, slice_of, slice_partitions
from projections.redis_client import RedisClient
from projections.scripts import claim_partition
from projections.tracking import RedisTrackingRecorder, SlicesFencedError

logger = logging.getLogger(__name__)


class Share(Protocol):
    """Which slices a worker may apply now, and with which fencing tokens."""

    @property
    def version(self) -> int:
        """Grows whenever `offered` may have changed."""

    def offered(self) -> dict[int, int]:
        """slice -> fencing token, for the slices this worker should apply now."""

    def released(self, slices: frozenset[int]) -> None:
        """This worker stopped applying these slices (another may take them now)."""

    def outdated(self, slice_number: int, held: int) -> None:
        """Redis holds token `held` for this slice, newer than `offered` gave: if the
        slice is still this worker's (the token is left from an earlier group, e.g. its
        tables were recreated), grant one above it."""


class FixedShare:
    """A fixed set of slices, unfenced: a rebuild's workers split a new generation."""

    version = 0

    def __init__(self, slices: frozenset[int]) -> None:
        self._slices = slices

    def offered(self) -> dict[int, int]:
        return dict.fromkeys(self._slices, 0)

    def released(self, slices: frozenset[int]) -> None:
        pass

    def outdated(self, slice_number: int, held: int) -> None:
        pass  # unfenced: a claim never fails


class OwnedSlices:
    """The slices a projector applies now, kept in step with its Share, and how far
    they and all the others have been applied."""

    def __init__(self, share: Share) -> None:
        self.share = share
        self.tokens: dict[int, int] = {}  # slice -> token, as claimed in Redis
        self.partitions: frozenset[int] = frozenset()
        self.partition_tokens: dict[int, int] = {}
        self.seen_version = -1
        self._version = -1
        # Every slice's position as last read or recorded: the read model's (readers').
        self.all_slices = 0

    # What the projector asks between pages

    def follow(
        self, client: RedisClient, keys: Keys, tracking: RedisTrackingRecorder, application: str
    ) -> tuple[int, Fences] | None:
        """If the share changed: take up what it offers now, and return the position to
        read on from (the lowest of our slices') and our partitions' fences. The change
        counts as seen only once both are done: a Redis error on the way means again."""
        if not self.changed:
            return None
        self.sync(client, keys, tracking)
        taken = self.positions(client, keys, tracking, application)
        self.seen()
        return taken

    def positions(
        self, client: RedisClient, keys: Keys, tracking: RedisTrackingRecorder, application: str
    ) -> tuple[int, Fences]:
        """Where our slices stand in Redis now: the lowest one's position (every slice's
        if we have none) and our partitions' fences."""
        positions = tracking.slice_positions(application)
        self.all_slices = min(positions.values())
        mine = [positions[s] for s in self.tokens]
        floors = read_floors(client, keys, tracking.generation)
        fences = {p: f for p, f in floors.items() if p in self.partitions}
        return (min(mine) if mine else self.all_slices), fences

    def record(
        self,
        tracking: RedisTrackingRecorder,
        application: str,
        position: int,
        *,
        recorded: int,
        floors: list[tuple[str, str]],
    ) -> bool:
        """Record our slices at `position`; True if every slice's position moved on."""
        before = self.all_slices
        self.all_slices = tracking.advance_slices(
            application, position, recorded=recorded, tokens=self.tokens, floors=floors
        )
        return self.all_slices > before

    def refused(self, fenced: FencedError | SlicesFencedError, fences: Fences) -> Fences:
        """A newer owner refused our token: drop those slices; the fences still ours."""
        if isinstance(fenced, FencedError):
            self.lose(frozenset(slice_of(p) for p in fenced.partitions))
        else:
            self.lose(fenced.slices)
        return {p: f for p, f in fences.items() if p in self.partitions}

    # Keeping in step with the share

    @property
    def changed(self) -> bool:
        return self.share.version != self.seen_version

    @property
    def applies_key_index(self) -> bool:
        """The API key index goes with slice 0."""
        return 0 in self.tokens

    def sync(self, client: RedisClient, keys: Keys, tracking: RedisTrackingRecorder) -> bool:
        """Take up what the share offers now; True if the slices applied changed.

        The share's version is taken as seen only by `seen()`, once the caller has also
        read the new slices' positions: a failure on the way means asking again."""
        self._version = self.share.version
        offered = self.share.offered()
        dropped = frozenset(s for s in self.tokens if offered.get(s) != self.tokens[s])
        if dropped:
            self.share.released(frozenset(s for s in dropped if s not in offered))
        tokens = {s: t for s, t in self.tokens.items() if s not in dropped}
        for slice_number, token in sorted(offered.items()):
            if slice_number in tokens:
                continue
            held = claim(client, keys, tracking, slice_number, token)
            if held == token:
                tokens[slice_number] = token
            else:  # a newer owner, or a token the share never granted: let it decide
                self.share.outdated(slice_number, held)
        if tokens == self.tokens:
            return False
        if set(tokens) != set(self.tokens):
            logger.info("this worker now applies %d slice(s): %s", len(tokens), sorted(tokens))
        self._use(tokens)
        return True

    def seen(self) -> None:
        """The slices `sync` took up are in use: look again when the share changes."""
        self.seen_version = self._version

    def reclaim(self, client: RedisClient, keys: Keys, tracking: RedisTrackingRecorder) -> None:
        """Write the tokens again (into a generation a rebuild just switched to)."""
        held = {s: t for s, t in self.tokens.items() if claim(client, keys, tracking, s, t) == t}
        self._use(held)

    def lose(self, slices: frozenset[int] | None = None) -> None:
        """A newer owner refused us: stop applying those slices (None: all)."""
        lost = frozenset(self.tokens) if slices is None else slices & frozenset(self.tokens)
        logger.warning(
            "slice(s) %s have a newer owner (this worker was taken for dead): dropped",
            sorted(lost),
        )
        self._use({s: t for s, t in self.tokens.items() if s not in lost})
        self.seen_version = -1  # ask the share again at the next page

    def _use(self, tokens: dict[int, int]) -> None:
        self.tokens = tokens
        self.partition_tokens = {p: t for s, t in tokens.items() for p in slice_partitions(s)}
        self.partitions = frozenset(self.partition_tokens)


def claim(
    client: RedisClient,
    keys: Keys,
    tracking: RedisTrackingRecorder,
    slice_number: int,
    token: int,
) -> int:
    """Write `token` beside the slice's partitions and in the tracking hash; returns the
    token held afterwards: `token`, or a newer one (the slice is someone else's now)."""
    if not token:
        return token  # unfenced (a rebuild's fixed split)
    generation = tracking.generation
    for partition in slice_partitions(slice_number):
        held = int(str(claim_partition(client, [keys.owner(generation, partition)], [str(token)])))
        if held != token:
            return held
    return tracking.claim_slice(slice_number, token)
