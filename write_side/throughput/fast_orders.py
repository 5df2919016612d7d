"""A lean path for the hottest write, POST /api/orders, in front of the framework's route.

It answers a well-formed order with a valid-looking key in the event loop: the body is
read, parsed exactly (numbers as Decimal) and validated with the route's own model, then
the order goes to the order desk (order_desk), which checks the key and places it in a
batch with whatever else is waiting. No thread hop, routing or dependency solving per
request. An order or a refund refused for its key or its body is answered here too, by
the functions the routes' dependencies use (write_side.auth, write_side.api), in their
order and with the framework's error rendering: hostile clients send exactly these.
Anything else (another path, an Idempotency-Key, a key the desk does not accept) passes
through untouched to the route in write_side.api, which stays the single source of every
such answer and of the OpenAPI document. Refusals of a placed order (404, 409, 503) are
answered here with the route's own wording, never passed on: the command must not run
twice.
"""

from __future__ import annotations

from collections.abc import Awaitable

import orjson
from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.access_policy import WRITE_EVENTS
from edge.errors import (
    INTERNAL_ERROR,
    REQUEST_ID_KEY,
    ApiError,
    error_body,
    log_unexpected,
    validation_error_body,
)
from edge.exact_json import BodyError, parse_json
from edge.pipeline import ROUTE_KEY
from edge.token_header import TokenHeaderError, key_from_header
from write_side.api import ORDER_FROM_INACTIVE, as_http_refusal, body_refusal
from write_side.auth import authorized_entry
from write_side.command_runner import Written
from write_side.key_directory import KeyDirectory
from write_side.orders import OrderRequest
from write_side.schemas import PlaceOrder, RefundOrder
from write_side.throughput.order_desk import OrderDesk, Referral

PATH = "/api/orders"
REFUND_ROUTE = "/api/orders/{order_id}/refunds"
_REFUNDS = "/refunds"
MAX_ORDER_ID = 100  # characters, as the route's path parameter allows
# Larger bodies are no plain order; the route reads them.
MAX_BODY_BYTES = 16 * 1024

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


class FastOrderPlacement:
    """ASGI app in front of `app`: answers plain order placements, passes the rest on."""

    def __init__(self, app: ASGIApp, desk: OrderDesk, keys: KeyDirectory) -> None:
        self._app = app
        self._desk = desk
        self._keys = keys

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function: everything else passes on with no coroutine of ours around it.
        if scope["type"] != "http" or scope["method"] != "POST":
            return self._app(scope, receive, send)
        path: str = scope["path"]
        if path == PATH:
            return self._place(scope, receive, send)
        if _is_refund_path(path):
            return self._refuse_refund(scope, receive, send)
        return self._app(scope, receive, send)

    async def _refuse_refund(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A refund refused for its key or its body; the route does the rest."""
        plain, authorization = _plain_order(scope["headers"])
        if not plain:
            await self._app(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        refusal = await self._refusal(authorization, body, RefundOrder) if complete else None
        if refusal is None:
            await self._app(scope, _replaying(body, complete, receive), send)
            return
        await _send_answer(scope, send, refusal, REFUND_ROUTE)

    async def _place(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain, authorization = _plain_order(scope["headers"])
        if not plain:
            await self._app(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        key = _key_in(authorization)
        request = _order_request(body) if complete else None
        if complete and (key is None or request is None):
            # Refused before any command runs: answered here when the route's answer
            # is certain (a bad key, or a body that is no JSON or holds no value), as
            # hostile clients send them by the thousand; the route explains the rest.
            refusal = await self._refusal(authorization, body, PlaceOrder)
            if refusal is not None:
                await _send_answer(scope, send, refusal)
                return
        outcome = await self._desk.place(key, request) if key and request else None
        if outcome is None or isinstance(outcome, Referral):
            await self._app(scope, _replaying(body, complete, receive), send)
            return
        await _send_answer(scope, send, _answer(outcome, scope.get(REQUEST_ID_KEY)))

    async def _refusal(
        self, authorization: bytes | None, body: bytes, model: type[BaseModel]
    ) -> Answer | None:
        """The route's refusal of a request for its key, its JSON or the body's model: the
        decisions the route's dependencies and body validation make, in the same order."""
        try:
            await authorized_entry(self._keys, authorization, WRITE_EVENTS)
            value = parse_json(body)
            if type(value) is not dict:  # the framework words these its own way
                return None
            model.model_validate(value)
        except ApiError as refused:
            return _refusal_answer(refused)
        except BodyError as error:
            refusal = body_refusal(error)
            if isinstance(refusal, ApiError):
                return _refusal_answer(refusal)
            return 422, validation_error_body(refusal.errors()), []
        except ValidationError as invalid:
            # As the framework reports a body that fails its model: under "body".
            errors = [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors()]
            return 422, validation_error_body(errors), []
        return None


async def _send_answer(scope: Scope, send: Send, answer: Answer, route: str = PATH) -> None:
    scope[ROUTE_KEY] = route
    status, content, headers = answer
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(content)).encode()),
                (b"content-type", b"application/json"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": content})


def _refusal_answer(refusal: ApiError) -> Answer:
    extra = [(name.lower().encode(), value.encode()) for name, value in refusal.headers.items()]
    return refusal.status_code, error_body(refusal.detail), extra


def _plain_order(headers: list[tuple[bytes, bytes]]) -> tuple[bool, bytes | None]:
    """Whether this is a JSON request without Idempotency-Key, and its Authorization.

    Repeated headers arrive joined by the edge pipeline, as every path sees them.
    """
    authorization: bytes | None = None
    content_type: bytes | None = None
    for name, value in headers:
        if name == b"authorization":
            authorization = value
        elif name == b"content-type":
            content_type = value
        elif name == b"idempotency-key":
            return False, None
    if content_type is None or content_type.split(b";")[0].strip().lower() != b"application/json":
        return False, None
    return True, authorization


def _is_refund_path(path: str) -> bool:
    """POST /api/orders/{order_id}/refunds with an order id the route's parameter allows."""
    if not path.startswith(PATH + "/") or not path.endswith(_REFUNDS):
        return False
    order_id = path[len(PATH) + 1 : -len(_REFUNDS)]
    return 0 < len(order_id) <= MAX_ORDER_ID and "/" not in order_id


def _key_in(authorization: bytes | None) -> str | None:
    if authorization is None:
        return None
    try:
        return key_from_header(authorization)
    except TokenHeaderError:
        return None


def _order_request(body: bytes) -> OrderRequest | None:
    """The order in a body the route would accept, else None (the route explains why)."""
    try:
        order = PlaceOrder.model_validate(parse_json(body))
    except (BodyError, ValidationError):
        return None
    return OrderRequest.new(order.customer_id, order.amount, order.order_id, order.placed_at)


def _answer(outcome: Written | Exception, request_id: str | None) -> Answer:
    if isinstance(outcome, Written):
        reply = {"order_id": outcome.result["order_id"], "position": outcome.position}
        return 201, orjson.dumps(reply), []
    refusal = as_http_refusal(outcome, inactive_detail=ORDER_FROM_INACTIVE)
    if refusal is not None:
        extra = [(name.lower().encode(), value.encode()) for name, value in refusal.headers.items()]
        return refusal.status_code, orjson.dumps({"detail": refusal.detail}), extra
    log_unexpected(outcome, "POST", PATH, request_id)
    return 500, orjson.dumps({"detail": INTERNAL_ERROR}), []


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The body, and whether it is all of it (not cut off by the size cap or a disconnect)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > MAX_BODY_BYTES:
            return b"".join(chunks), False


def _replaying(body: bytes, complete: bool, receive: Receive) -> Receive:
    """A receive channel that yields what was read already, then the original's messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay
