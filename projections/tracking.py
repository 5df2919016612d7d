"""The projector's position in Redis, behind the library's TrackingRecorder interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from redis.exceptions import ResponseError

from projections.read_model import SLICES, Keys, slice_field, token_field
from projections.redis_client import RedisClient
from projections.scripts import advance_slices, claim_partition, insert_tracking


class TrackingRolledBackError(Exception):
    """Redis holds a lower position than this writer recorded: it lost data since."""

    def __init__(self, found: int, recorded: int) -> None:
        super().__init__(f"tracking at {found}, below the {recorded} recorded before")
        self.found = found
        self.recorded = recorded


class SlicesFencedError(Exception):
    """A slice has a newer owner: this worker was taken for dead (its lease ran out)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        words = message.split()  # FENCED <owner token> slice <slice>
        self.slices = frozenset([int(words[3])]) if len(words) == 4 else None


class RedisTrackingRecorder(TrackingRecorder):
    """Positions per application name in one generation's tracking hash; they only grow."""

    def __init__(self, client: RedisClient, keys: Keys, generation: int) -> None:
        self.client = client
        self.keys = keys
        self.generation = generation
        self.key = keys.tracking(generation)

    def insert_tracking(self, tracking: Tracking) -> None:
        self.advance(tracking.application_name, tracking.notification_id, recorded=0)

    def advance(
        self,
        application_name: str,
        position: int,
        *,
        recorded: int,
        floors: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record `position`, checking that the hash still holds `recorded` (ours, last);
        `floors` are partitions' checkpoints the same page confirmed, recorded with it.

        Raises IntegrityError when the hash is at `position` or beyond already (another
        writer got there first), TrackingRolledBackError when it holds less than `recorded`.
        """
        args = [application_name, str(position), str(recorded)]
        for field, checkpoint in floors:
            args += (field, checkpoint)
        try:
            insert_tracking(self.client, [self.key], args)
        except ResponseError as error:
            message = str(error)
            if message.startswith("TRACKING"):
                raise IntegrityError(message) from None
            if message.startswith("ROLLBACK"):
                raise TrackingRolledBackError(int(message.split()[1]), recorded) from None
            raise

    def max_tracking_id(self, application_name: str) -> int | None:
        value = self.client.hget(self.key, application_name)
        return None if value is None else int(value)

    # Workers: each owns slices of the partitions and records them one by one; the
    # application's position is the lowest slice's (projections/scripts.py ADVANCE_SLICES).

    def advance_slices(
        self,
        application_name: str,
        position: int,
        *,
        recorded: int,
        tokens: Mapping[int, int],
        floors: Sequence[tuple[str, str]] = (),
    ) -> int:
        """Record that the slices in `tokens` (slice -> fencing token) are applied up to
        `position`; return the application's position (every slice applied that far).

        Raises SlicesFencedError when a slice has a newer owner, TrackingRolledBackError
        when one holds less than `recorded`.
        """
        args = [application_name, str(position), str(recorded), str(len(tokens))]
        for slice_number, token in sorted(tokens.items()):
            args += (str(slice_number), str(token))
        for field, checkpoint in floors:
            args += (field, checkpoint)
        try:
            reply = advance_slices(self.client, [self.key], args)
        except ResponseError as error:
            message = str(error)
            if message.startswith("FENCED"):
                raise SlicesFencedError(message) from None
            if message.startswith("ROLLBACK"):
                raise TrackingRolledBackError(int(message.split()[1]), recorded) from None
            raise
        return int(str(reply))

    def slice_positions(self, application_name: str) -> dict[int, int]:
        """slice -> the position it is applied up to (at least the application's)."""
        fields = [application_name] + [slice_field(s) for s in range(SLICES)]
        values = self.client.hmget(self.key, fields)
        base = int(values[0] or 0)
        return {s: max(base, int(v or 0)) for s, v in enumerate(values[1:])}

    def claim_slice(self, slice_number: int, token: int) -> int:
        """Raise the slice's owner token in the tracking hash; the token held afterwards
        (above `token`: a newer owner holds the slice)."""
        held = claim_partition(self.client, [self.key], [str(token), token_field(slice_number)])
        return int(str(held))
