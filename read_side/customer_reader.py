"""Every answer to GET /api/customers/{id}, decided in one place and returned as bytes.

`CustomerReader.reply` decides auth, id, read-your-writes, the lookup and the ETag, and
returns finished bytes. The fast path (read_side/fast_path.py) and the documented route
(read_side/api.py) both answer with it, so the two cannot diverge.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import NamedTuple

import orjson

from edge.ids import parse_customer_id
from edge.token_header import INVALID_TOKEN
from projections.customer_record import (
    FIELDS_AT,
    MAX_CHUNKS,
    place_of,
    read_customer,
    record_of,
)
from projections.read_model import Keys, partition_of
from read_side.auth import AccessRefusedError, authorize_reader
from read_side.projection_state import ProjectionState
from read_side.redis_link import (
    CommandLink,
    KeyedCommand,
    RedisReplyError,
    StoreUnavailableError,
)

log = logging.getLogger("customers.read")

NOT_FOUND = "Customer not found."
UNAVAILABLE = "The read model is unavailable; retry shortly."
NOT_CAUGHT_UP = "The read model has not reached X-Min-Position yet; retry shortly."
BAD_MIN_POSITION = "X-Min-Position must be a non-negative integer."
RETRY_AFTER_SECONDS = "1"
MAX_CACHED_DECISIONS = 10_000
BAD_POSITION = -1

_JSON = (b"content-type", b"application/json")
_WWW_AUTHENTICATE = (b"www-authenticate", b"Token")
_RETRY_AFTER = (b"retry-after", RETRY_AFTER_SECONDS.encode())
_CACHE_CONTROL = (b"cache-control", b"private, no-cache")
_VARY = (b"vary", b"Authorization")
# A customer's HMGET by its place in the bucket: the field names packed once.
_HMGET_AT = tuple(KeyedCommand("HMGET", *fields) for fields in FIELDS_AT)


class Reply(NamedTuple):  # a tuple: made for every read, and cheaper than a dataclass
    status: int
    headers: list[tuple[bytes, bytes]]  # all of the answer's own, Content-Length included
    body: bytes


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())


def _error(status: int, detail: str, *extra: tuple[bytes, bytes]) -> Reply:
    body = orjson.dumps({"detail": detail})
    return Reply(status, [_JSON, *extra, _length(body)], body)


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


class CustomerReader:
    """Decides the whole answer to one customer read; returns finished bytes."""

    def __init__(
        self,
        link: CommandLink,
        state: ProjectionState,
        keys: Keys,
        *,
        min_position_wait: float = 2.0,
    ) -> None:
        self._link = link
        self._state = state
        self._keys = keys
        self._min_position_wait = min_position_wait
        # Authorization header -> role, valid for one snapshot of the keys only.
        self._granted: dict[bytes | str, str] = {}
        self._granted_for: object = None

    async def reply(
        self,
        segment: str,
        authorization: bytes | str | None,
        min_position: str | None = None,
        if_none_match: str | None = None,
    ) -> Reply:
        state = self._state
        if not state.is_fresh or state.trouble is not None:
            # The cached keys may miss a revocation (too old, or Redis lost data and is
            # being repaired), so nobody is let in; /readyz says why.
            return _error(503, UNAVAILABLE, _RETRY_AFTER)
        wanted = _min_position(min_position)
        refusal = self._authorize(authorization)
        if (
            refusal is not None
            and refusal.detail == INVALID_TOKEN
            and wanted is not None
            and wanted > state.grants_position
        ):
            # A key issued just before the write it waits for may be newer than the cached
            # keys: read them once more. An unknown key never waits, whatever it asks for.
            with contextlib.suppress(StoreUnavailableError, RedisReplyError):
                await state.refresh()
            refusal = self._authorize(authorization)
        if refusal is not None:
            if refusal.status == 401:
                return _error(401, refusal.detail, _WWW_AUTHENTICATE)
            return _error(refusal.status, refusal.detail)
        if wanted == BAD_POSITION:
            return _error(422, BAD_MIN_POSITION)
        customer_id = parse_customer_id(segment)
        if customer_id is None:
            return _error(404, NOT_FOUND)
        reached = 0
        if wanted is not None:
            waited = await state.wait_for(wanted, self._min_position_wait, customer_id)
            if waited is None:
                return _error(503, NOT_CAUGHT_UP, _RETRY_AFTER)
            reached = waited
        if state.lost_partitions and partition_of(customer_id) in state.lost_partitions:
            return _error(503, UNAVAILABLE, _RETRY_AFTER)  # its node lost data: replaying
        # Read the position before the record: the record is at least that new.
        position = state.position
        generation = state.generation
        connection = self._link.connections
        try:
            bucket = self._keys.bucket(generation, customer_id)
            fields = await self._link.execute_packed(
                bucket, _HMGET_AT[place_of(customer_id)].packed(bucket)
            )
            if (
                self._link.connections != connection
                or state.verified_connection != connection
                or state.trouble is not None
            ):
                # Answered over a new connection (perhaps by a Redis that restarted), or a
                # loss was found meanwhile: not known to be the read model's truth.
                return _error(503, UNAVAILABLE, _RETRY_AFTER)
            record = record_of(fields)
            if record is None and await state.position_went_back(generation, position, customer_id):
                return _error(503, UNAVAILABLE, _RETRY_AFTER)  # lost, not absent
        except (StoreUnavailableError, RedisReplyError):
            return _error(503, UNAVAILABLE, _RETRY_AFTER)
        if record is None:
            return _error(404, NOT_FOUND)
        body = orjson.dumps(
            read_customer(customer_id, record, fields[MAX_CHUNKS] or 0, fields[MAX_CHUNKS + 1] or 0)
        )
        # 96 bits of SHA-256: OpenSSL's measured 2.4x cheaper here than the bundled
        # BLAKE2b, and as unlikely to repeat for another body.
        etag = f'"{hashlib.sha256(body).hexdigest()[:24]}"'
        headers = [
            (b"etag", etag.encode()),
            # What this customer's record reflects: its own partition may be further on.
            (b"x-projection-position", str(max(position, reached)).encode()),
            _CACHE_CONTROL,
            _VARY,
        ]
        if if_none_match is not None and _etag_matches(if_none_match, etag):
            return Reply(304, headers, b"")  # no Content-Length: a 304 has no body to measure
        headers += (_JSON, _length(body))
        return Reply(200, headers, body)

    def _authorize(self, authorization: bytes | str | None) -> AccessRefusedError | None:
        """None if the caller may read; the refusal otherwise (decisions cached per keys)."""
        grants = self._state.grants
        if grants is not self._granted_for:
            # New key data: forget every decision made on the old (revocation stays bounded).
            self._granted, self._granted_for = {}, grants
        if authorization is not None and authorization in self._granted:
            return None
        try:
            role = authorize_reader(authorization, grants)
        except AccessRefusedError as refusal:
            return refusal
        if authorization is not None and len(self._granted) < MAX_CACHED_DECISIONS:
            self._granted[authorization] = role
        return None


def _min_position(header: str | None) -> int | None:
    """X-Min-Position as an int; None if absent; BAD_POSITION if not a non-negative int."""
    if header is None:
        return None
    wanted = header.strip()
    if not wanted.isascii() or not wanted.isdigit() or len(wanted) > 19:
        return BAD_POSITION
    return int(wanted)
