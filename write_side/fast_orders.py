"""A lean path for the hottest write, POST /api/orders, beside the framework's route.

Profiling one uvicorn worker under load showed most of each order's CPU spent in the
framework's per-request machinery (routing, dependency solving, two thread hops), not
in the command. This ASGI middleware answers a well-formed, authorised order request
with one thread hop and the same checks, command and responses as the route in
write_side.api. Anything else (another path, a missing or refused key, a body that
fails validation, an Idempotency-Key) passes through untouched to the route, which
stays the single source of every error body and of the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from decimal import Decimal
from typing import Any

import orjson
from anyio import CapacityLimiter, to_thread
from eventsourcing.persistence import InterfaceError, OperationalError
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.errors import ApiError
from edge.token_header import TokenHeaderError, key_from_header
from write_side.api import refusals_as_http
from write_side.application import CustomerService
from write_side.auth import WRITE_ROLES, KeyDirectory
from write_side.schemas import PlaceOrder

PATH = "/api/orders"
INACTIVE_DETAIL = "Customer is deactivated and cannot place orders."

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]

# Threads for concurrent orders. They mostly wait for a shared commit, so more of them
# means bigger group commits, not more CPU; the framework's default pool has 40.
ORDER_THREADS = 256


class FastOrderPlacement:
    """ASGI middleware: answers plain order placements itself, passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._limiter: CapacityLimiter | None = None  # made in the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away mid-body; let the framework see it
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        if self._limiter is None:
            self._limiter = CapacityLimiter(ORDER_THREADS)
        answer = await to_thread.run_sync(
            _answer,
            scope["headers"],
            body,
            state.write_service,
            state.write_keys,
            limiter=self._limiter,
        )
        if answer is None:
            await self.app(scope, _replaying(body, receive), send)
            return
        status, content, extra_headers = answer
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                    *extra_headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


def _answer(
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    service: CustomerService,
    directory: KeyDirectory,
) -> Answer | None:
    """The response to a plain, authorised, valid order; None for the framework to handle."""
    authorization: bytes | None = None
    content_type = b""
    for name, value in headers:
        if name == b"authorization":
            authorization = value
        elif name == b"content-type":
            content_type = value
        elif name == b"idempotency-key":
            return None
    if content_type.split(b";")[0].strip().lower() != b"application/json":
        return None
    try:
        key = key_from_header(authorization.decode("latin-1") if authorization else None)
        entry = directory.lookup(key)
    except (TokenHeaderError, OperationalError, InterfaceError):
        return None
    if entry is None or entry.is_revoked or entry.role not in WRITE_ROLES:
        return None
    try:
        order = PlaceOrder.model_validate(json.loads(body, parse_float=Decimal))
    except (ValueError, ValidationError):
        return None
    try:
        with refusals_as_http(inactive_detail=INACTIVE_DETAIL):
            written = service.place_order(
                order.customer_id, order.amount, order.order_id, order.placed_at
            )
    except ApiError as refusal:
        # Answered here, never passed on: the command must not run twice.
        extra = [(name.lower().encode(), value.encode()) for name, value in refusal.headers.items()]
        return refusal.status_code, orjson.dumps({"detail": refusal.detail}), extra
    reply = {"order_id": written.result["order_id"], "position": written.position}
    return 201, orjson.dumps(reply), []


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A receive channel that yields the already-read body first, then the original."""
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
