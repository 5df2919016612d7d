"""Write read model records by hand, exactly in the layout projections/read_model.py defines.

For read-side tests that need precise records (odd values, revoked keys, positions)
without running the projector.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import redis

from contract.customer_document import PROFILE_FIELDS
from projections.customer_record import (
    chunked,
    encode_record,
    offset_of,
    orders_field,
    spent_field,
)
from projections.read_model import Keys


def put_customer(
    client: redis.Redis,
    keys: Keys,
    customer_id: int,
    *,
    generation: int = 1,
    position: int = 1,
    active: bool = True,
    date_joined: str = "2024-01-02T03:04:05.000006+00:00",
    last_login: str | None = None,
    spent_cents: int = 0,
    orders: int = 0,
    **profile: Any,
) -> None:
    unknown = set(profile) - set(PROFILE_FIELDS)
    assert not unknown, f"not profile fields: {unknown}"
    record = encode_record(
        position, active, date_joined, last_login, [profile.get(n) for n in PROFILE_FIELDS]
    )
    fields: dict[str | bytes, bytes | int] = {**chunked(offset_of(customer_id), record)}
    fields[spent_field(customer_id)] = spent_cents
    fields[orders_field(customer_id)] = orders
    client.hset(keys.bucket(generation, customer_id), mapping=fields)  # type: ignore[arg-type]


def put_api_key(
    client: redis.Redis,
    keys: Keys,
    key: str,
    role: str,
    *,
    revoked: bool = False,
    generation: int = 1,
    position: int = 1,
) -> None:
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    client.hset(
        keys.api_keys(generation), key_hash, orjson.dumps([position, role, 1 if revoked else 0])
    )


def set_applied_position(
    client: redis.Redis, keys: Keys, position: int, *, generation: int = 1, announce: bool = True
) -> None:
    client.hset(keys.tracking(generation), "customers", position)
    if announce:
        client.publish(keys.positions_channel, f"{generation}:{position}")
