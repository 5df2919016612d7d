"""GET /api/customers/{id}: one implementation, served by a lean ASGI fast path.

`CustomerReader.reply` decides every answer (auth, id, read-your-writes, lookup, ETag)
and returns finished bytes. `CustomerFastPath` sits in front of the FastAPI app and
answers exactly `GET /api/customers/<segment>` with it, skipping routing, dependency
injection and response validation. The FastAPI route below calls the same `reply`, so
it documents the endpoint in OpenAPI and serves it if the fast path is not mounted; the
two cannot diverge.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from edge.ids import MAX_CUSTOMER_ID, parse_customer_id
from edge.pipeline import RESPOND_KEY, ROUTE_KEY
from edge.token_header import INVALID_TOKEN
from projections.read_model import DOC_FIELD, ORDERS_FIELD, SPENT_FIELD, Keys, render_customer
from read_side.auth import AccessRefusedError, authorize_reader
from read_side.projection_state import ProjectionState
from read_side.redis_link import RedisLink, RedisReplyError, StoreUnavailableError

log = logging.getLogger("customers.read")

PATH_PREFIX = "/api/customers/"
ROUTE = "/api/customers/{customer_id}"
NOT_FOUND = "Customer not found."
UNAVAILABLE = "The read model is unavailable; retry shortly."
NOT_CAUGHT_UP = "The read model has not reached X-Min-Position yet; retry shortly."
BAD_MIN_POSITION = "X-Min-Position must be a non-negative integer."
RETRY_AFTER_SECONDS = "1"
MAX_CACHED_DECISIONS = 10_000
BAD_POSITION = -1

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_WWW_AUTHENTICATE = (b"www-authenticate", b"Token")
_RETRY_AFTER = (b"retry-after", RETRY_AFTER_SECONDS.encode())
_CACHE_CONTROL = (b"cache-control", b"private, no-cache")
_VARY = (b"vary", b"Authorization")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _error(status: int, detail: str, *extra: tuple[bytes, bytes]) -> Reply:
    return Reply(status, [_JSON, *extra], orjson.dumps({"detail": detail}))


def _etag_matches(if_none_match: str, etag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


class CustomerReader:
    """Decides the whole answer to one customer read; returns finished bytes."""

    def __init__(
        self,
        link: RedisLink,
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
        if wanted is not None and not await state.wait_for(wanted, self._min_position_wait):
            return _error(503, NOT_CAUGHT_UP, _RETRY_AFTER)
        # Read the position before the record: the record is at least that new.
        position = state.position
        generation = state.generation
        connection = self._link.connections
        try:
            doc, spent, orders = await self._link.execute(
                "HMGET", self._keys.customer(generation, customer_id),
                DOC_FIELD, SPENT_FIELD, ORDERS_FIELD,
            )  # fmt: skip
            if (
                self._link.connections != connection
                or state.verified_connection != connection
                or state.trouble is not None
            ):
                # Answered over a new connection (perhaps by a Redis that restarted), or a
                # loss was found meanwhile: not known to be the read model's truth.
                return _error(503, UNAVAILABLE, _RETRY_AFTER)
            if doc is None and await state.position_went_back(generation, position):
                return _error(503, UNAVAILABLE, _RETRY_AFTER)  # lost, not absent
        except (StoreUnavailableError, RedisReplyError):
            return _error(503, UNAVAILABLE, _RETRY_AFTER)
        if doc is None:
            return _error(404, NOT_FOUND)
        body = render_customer(customer_id, doc, spent or 0, orders or 0)
        etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        headers = [
            (b"etag", etag.encode()),
            (b"x-projection-position", str(position).encode()),
            _CACHE_CONTROL,
            _VARY,
        ]
        if if_none_match is not None and _etag_matches(if_none_match, etag):
            return Reply(304, headers, b"")
        headers.append(_JSON)
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


class CustomerFastPath:
    """ASGI app answering GET and HEAD /api/customers/<segment> without the framework.

    Everything else goes to `app`. The edge pipeline around it has joined repeated
    headers, bounded the request and times, logs and renders failures for every path.
    """

    def __init__(self, app: ASGIApp, reader: Callable[[], CustomerReader | None]) -> None:
        self._app = app
        self._reader = reader

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function handing back the coroutine that answers: one coroutine less
        # for every request to create and step through (the read path is the hottest).
        path: str = scope.get("path", "")
        reader = self._reader()
        if (
            reader is None
            or scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or not path.startswith(PATH_PREFIX)
            or len(path) == len(PATH_PREFIX)  # no id: no such route, as in the framework
            or "/" in path[len(PATH_PREFIX) :]
        ):
            return self._app(scope, receive, send)
        return self._serve(reader, scope, path[len(PATH_PREFIX) :], send)

    async def _serve(self, reader: CustomerReader, scope: Scope, segment: str, send: Send) -> None:
        scope[ROUTE_KEY] = ROUTE
        authorization: bytes | None = None
        min_position = if_none_match = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-min-position":
                min_position = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        reply = await reader.reply(segment, authorization, min_position, if_none_match)
        headers = reply.headers
        if reply.status != 304:
            headers = [*headers, (b"content-length", str(len(reply.body)).encode())]
        respond = scope.get(RESPOND_KEY)
        if respond is not None:  # the edge pipeline: the whole answer at once
            unsent = respond(reply.status, headers, reply.body)
            if unsent is not None:
                await unsent
            return
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


# The documented route: same behaviour, and the schema staff tools read.


class CustomerDocument(BaseModel):
    """The 200 body, fields in this order."""

    id: int
    first_name: str | None
    last_name: str | None
    email: str | None
    mobile_number: str | None
    national_code: str | None
    birth_date: str | None = Field(description="YYYY-MM-DD", pattern=r"^\d{4}-\d{2}-\d{2}$")
    gender: str | None = Field(description="male or female", pattern="^(male|female)$")
    notes: str | None
    is_active: bool
    is_profile_completed: bool
    date_joined: str = Field(description="ISO 8601 with timezone")
    last_login: str | None = Field(description="ISO 8601 with timezone")
    total_orders: int
    total_spent: str = Field(description="Exact decimal with two places", pattern=r"^-?\d+\.\d{2}$")


class ErrorDetail(BaseModel):
    detail: str


def _documented(description: str, **headers: str) -> dict[str, Any]:
    documented: dict[str, Any] = {"model": ErrorDetail, "description": description}
    if headers:
        documented["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return documented


READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The customer",
        "headers": {
            "X-Projection-Position": {
                "description": "Event store position the read model had applied",
                "schema": {"type": "integer"},
            },
            "ETag": {"description": "Entity tag of the body", "schema": {"type": "string"}},
        },
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    401: _documented(
        "Missing, malformed, unknown or revoked key",
        **{"WWW-Authenticate": "Always Token"},
    ),
    403: _documented("The key's role is not staff or admin"),
    404: _documented("No such customer, or an id that is not a positive 64-bit integer"),
    422: _documented("X-Min-Position is not a non-negative integer"),
    500: _documented("Internal server error."),
    503: _documented(
        "Read model unreachable, or X-Min-Position not reached in time",
        **{"Retry-After": "Seconds to wait before retrying"},
    ),
}

router = APIRouter(tags=["staff"])


@router.get(
    ROUTE,
    operation_id="get_customer",
    response_model=CustomerDocument,
    summary="Read one customer with running totals",
    responses=READ_RESPONSES,
)
async def get_customer(
    request: Request,
    customer_id: Annotated[
        str,
        Path(
            description="Customer id, a positive integer that fits in 64 bits",
            json_schema_extra={"type": "integer", "minimum": 1, "maximum": MAX_CUSTOMER_ID},
        ),
    ],
    authorization: Annotated[
        str | None, Header(description="`Token <key>` of a staff or admin key")
    ] = None,
    x_min_position: Annotated[
        str | None,
        Header(
            description="Wait (bounded) until the read model applied this write position",
            json_schema_extra={"type": "integer", "minimum": 0},
        ),
    ] = None,
    if_none_match: Annotated[
        str | None, Header(description="ETag of a cached copy; 304 when unchanged")
    ] = None,
) -> Response:
    reader: CustomerReader = request.app.state.customer_reader
    reply = await reader.reply(customer_id, authorization, x_min_position, if_none_match)
    response = Response(reply.body, status_code=reply.status)
    response.raw_headers.extend(reply.headers)
    return response


router.add_api_route(
    ROUTE,
    get_customer,
    methods=["HEAD"],
    operation_id="head_customer",
    summary="The headers of a customer read, without its body",
    response_class=Response,
    responses={**READ_RESPONSES, 200: {"description": "As GET, without the body"}},
)
