"""Which generation of the read model is served: rebuilds fill a new one, then switch."""

from __future__ import annotations

import redis

from projections.read_model import Keys


def current_generation(client: redis.Redis, keys: Keys) -> int:
    """The generation reads are served from, created as 1 on first use."""
    client.set(keys.generation, "1", nx=True)
    value = client.get(keys.generation)
    return int(value) if value is not None else 1
