"""Which generation of the read model is served: rebuilds fill a new one, then switch."""

from __future__ import annotations

from projections.read_model import LAYOUT, LAYOUT_FIELD, Keys
from projections.redis_client import RedisClient

# How long an old generation stays after a switch: a projector or reader that looked at the
# generation just before it finishes its step on the old keys within this time.
DROP_GRACE_SECONDS = 2.0


def current_generation(client: RedisClient, keys: Keys) -> int:
    """The generation reads are served from, created as 1 on first use."""
    client.set(keys.generation, "1", nx=True)
    value = client.get(keys.generation)
    return int(value) if value is not None else 1


class LayoutMismatchError(Exception):
    """A generation was written in another layout than this version writes and reads."""


def claim_layout(client: RedisClient, keys: Keys, generation: int) -> None:
    """Record this version's LAYOUT for `generation`, or refuse one recorded in another."""
    pipe = client.pipeline(transaction=True)
    pipe.hsetnx(keys.tracking(generation), LAYOUT_FIELD, LAYOUT)
    pipe.hget(keys.tracking(generation), LAYOUT_FIELD)
    recorded = pipe.execute()[1]
    if recorded is not None and recorded.decode() != LAYOUT:
        raise LayoutMismatchError(
            f"generation {generation} of the read model is in layout {recorded.decode()!r}, "
            f"this version writes {LAYOUT!r}: run `customers rebuild` with this version, "
            "or run the version that wrote it"
        )
