"""The read path's records as Redis returns them: generation, positions, API key grants."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

log = logging.getLogger("customers.read")

FIRST_GENERATION = 1


@dataclass(frozen=True)
class KeyGrant:
    key_hash: str
    role: str
    revoked: bool


def generation_of(value: bytes | None) -> int:
    # The projector creates generation 1 on first use; until then there is nothing else.
    return int(value) if value is not None else FIRST_GENERATION


def as_text_dict(flat: list[bytes]) -> dict[str, str]:
    return {flat[index].decode(): flat[index + 1].decode() for index in range(0, len(flat) - 1, 2)}


def as_int(value: bytes | None) -> int:
    return int(value) if value else 0


def parse_grants(flat: list[bytes]) -> dict[str, KeyGrant]:
    grants: dict[str, KeyGrant] = {}
    for index in range(0, len(flat) - 1, 2):
        try:
            _, role, revoked = orjson.loads(flat[index + 1])
        except (orjson.JSONDecodeError, ValueError, TypeError):
            log.warning("ignoring a malformed API key record")
            continue
        key_hash = flat[index].decode()
        grants[key_hash] = KeyGrant(key_hash, str(role), bool(int(revoked)))
    return grants
