"""The outermost HTTP layer: every request of every path passes here, fast paths included.

What is the same for every request lives here and nowhere else: repeated headers joined
as Django joins them, the body limit, request ids, the headers every response carries,
HEAD without a body, the 500 for anything unhandled, and the latency metrics. (Header
size and time limits act earlier, in the HTTP protocol: runtime/http_protocol.py.)
The fast paths and the framework inside only ever see requests that passed it, so they
cannot diverge on any of these.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from edge.errors import INTERNAL_ERROR, REQUEST_ID_KEY, error_body, log_unexpected

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]  # a whole response: status, headers, body

ROUTE_KEY = "edge.route"  # where a fast path names the route template it answered
# A fast path with a finished answer hands it to scope[RESPOND_KEY](status, headers, body)
# instead of sending ASGI messages; the server may write it at once (RAW_CYCLE_KEY), else
# that call returns an awaitable which sends it.
RESPOND_KEY = "edge.respond"
RAW_CYCLE_KEY = "edge.raw_cycle"
UNMATCHED = "unmatched"

BAD_LENGTH = "Content-Length must be a non-negative integer."

# Sent with every response; one line here adds a header everywhere.
COMMON_HEADERS: Headers = [(b"x-content-type-options", b"nosniff")]

_JSON = (b"content-type", b"application/json")
_CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_ID_PREFIX = os.urandom(4).hex()


RawResponder = Callable[[object, int, Headers, bytes], bool]


class DirectRoute(Protocol):
    """A route the server may ask for a whole answer without an ASGI request (`direct`)."""

    route: str

    def answer(self, path: str, headers: Headers) -> Coroutine[Any, Any, Answer] | None: ...


class Observer(Protocol):
    in_flight: int

    def observe(self, method: str, route: str, status: int, seconds: float) -> None: ...


@dataclass(frozen=True)
class EdgeLimits:
    max_body_bytes: int = 64 * 1024


def too_large(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


def join_repeated(headers: Headers) -> Headers:
    """Repeated headers as one, joined with "," ("; " for cookies), the way Django does."""
    names = [name for name, _ in headers]
    if len(set(names)) == len(names):
        return headers
    joined: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in joined:
            separator = b"; " if name == b"cookie" else b","
            joined[name] = joined[name] + separator + value
        else:
            joined[name] = value
    return list(joined.items())


class EdgePipeline:
    """ASGI app wrapping the whole service; see the module docstring for what it owns."""

    def __init__(
        self,
        app: ASGIApp,
        limits: EdgeLimits,
        observer: Observer | None = None,
        raw_responder: RawResponder | None = None,
        direct_route: Callable[[], DirectRoute | None] | None = None,
    ) -> None:
        self._app = app
        self._limits = limits
        self._observer = observer
        self._raw = raw_responder
        self._direct_route = direct_route
        self._ids = itertools.count(1)

    def direct(
        self, method: str, path: str, headers: Headers
    ) -> Coroutine[Any, Any, Answer] | None:
        """The whole answer to a GET or HEAD without a body, for a server that can skip
        the ASGI request for it (runtime/http_protocol.py); None: not a direct route's
        request, send it through `__call__` instead.

        This is the same layer as `__call__`, entered earlier: repeated headers joined,
        the request id, the common headers, the 500 and the metrics, in the same helpers.
        HEAD's body is left for the server to drop, as the ASGI way leaves it to uvicorn.
        """
        route = self._direct_route() if self._direct_route is not None else None
        if route is None:
            return None
        by_name = dict(headers)
        if len(by_name) != len(headers):
            headers = join_repeated(headers)
            by_name = dict(headers)
        if b"content-length" in by_name or b"transfer-encoding" in by_name:
            return None
        answering = route.answer(path, headers)
        if answering is None:
            return None
        return self._direct(answering, method, path, route.route, self._request_id(by_name))

    async def _direct(
        self,
        answering: Coroutine[Any, Any, Answer],
        method: str,
        path: str,
        route: str,
        request_id: str,
    ) -> Answer:
        started = time.perf_counter()
        observer = self._observer
        if observer is not None:
            observer.in_flight += 1
        status = 500
        try:
            status, headers, body = await answering
        except Exception as error:
            log_unexpected(error, method, path, request_id)
            status, headers, body = 500, *_error_answer(INTERNAL_ERROR)
        finally:
            if observer is not None:
                observer.in_flight -= 1
                observer.observe(method, route, status, time.perf_counter() - started)
        return status, [*headers, *COMMON_HEADERS, (b"x-request-id", request_id.encode())], body

    def _request_id(self, by_name: dict[bytes, bytes]) -> str:
        client_id = by_name.get(b"x-request-id")
        if client_id is not None and _CLIENT_REQUEST_ID.fullmatch(client_id):
            return client_id.decode()
        return f"{_ID_PREFIX}-{next(self._ids)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = scope["headers"]
        # One dict, built in C, answers the three questions every request asks of its
        # headers; this layer runs on the hottest path, so it is kept to a few steps.
        by_name = dict(headers)
        if len(by_name) != len(headers):
            headers = scope["headers"] = join_repeated(headers)
            by_name = dict(headers)
        request_id = scope[REQUEST_ID_KEY] = self._request_id(by_name)
        reply = _Reply(send, scope["method"] == "HEAD", request_id)
        if self._raw is not None and RAW_CYCLE_KEY in scope:
            reply.raw_cycle, reply.raw = scope[RAW_CYCLE_KEY], self._raw
        scope[RESPOND_KEY] = reply.respond
        observer = self._observer
        if observer is not None:
            observer.in_flight += 1
        try:
            if b"content-length" in by_name or b"transfer-encoding" in by_name:
                body = await self._bounded_body(by_name.get(b"content-length"), receive, reply)
                if body is not None:
                    await self._app(scope, _replaying(body, receive), reply.send)
            else:  # neither Content-Length nor Transfer-Encoding: there is no body
                await self._app(scope, receive, reply.send)
        except Exception as error:
            log_unexpected(error, scope["method"], scope.get("path", ""), request_id)
            if not reply.started:
                await reply.error(500, INTERNAL_ERROR)
        finally:
            if observer is not None:
                observer.in_flight -= 1
                observer.observe(
                    scope["method"], _route_of(scope), reply.status, time.perf_counter() - started
                )

    async def _bounded_body(
        self, length: bytes | None, receive: Receive, reply: _Reply
    ) -> bytes | None:
        """The whole body if within the limit; None once a refusal was sent instead."""
        limit = self._limits.max_body_bytes
        if length is not None:
            if not length.isdigit() or len(length) > 19:
                await reply.error(400, BAD_LENGTH)
                return None
            if int(length) > limit:
                await reply.error(413, too_large(limit), [(b"connection", b"close")])
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client left
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await reply.error(413, too_large(limit), [(b"connection", b"close")])
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _route_of(scope: Scope) -> str:
    template = scope.get(ROUTE_KEY)
    if template is None:
        template = getattr(scope.get("route"), "path", None)
    return template or UNMATCHED


class _Reply:
    """The send channel of one request: common headers added, HEAD bodies dropped."""

    __slots__ = ("_common", "_head", "_send", "raw", "raw_cycle", "started", "status")

    def __init__(self, send: Send, head: bool, request_id: str) -> None:
        self._send = send
        self._head = head
        self._common = (*COMMON_HEADERS, (b"x-request-id", request_id.encode()))
        self.started = False
        self.status = 500
        self.raw: RawResponder | None = None
        self.raw_cycle: object = None

    def send(self, message: Message) -> Awaitable[None]:
        # A plain function returning the server's own awaitable: no coroutine of its own
        # to create and step through for each message.
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), *self._common]
        elif kind == "http.response.body" and self._head and message.get("body"):
            message = {**message, "body": b""}
        return self._send(message)

    def respond(self, status: int, headers: Headers, body: bytes) -> Awaitable[None] | None:
        """A whole answer at once (headers include Content-Length). None once written
        directly, which the server allows in the common case; else what sends it as the
        two ASGI messages, to await."""
        raw = self.raw
        if (
            raw is not None
            and not self.started
            and raw(self.raw_cycle, status, [*headers, *self._common], body)
        ):
            self.started, self.status = True, status
            return None
        return self._respond_by_messages(status, headers, body)

    async def _respond_by_messages(self, status: int, headers: Headers, body: bytes) -> None:
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def error(self, status: int, detail: str, extra: Headers | None = None) -> None:
        headers, body = _error_answer(detail)
        headers += extra or ()
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})


def _error_answer(detail: str) -> tuple[Headers, bytes]:
    body = error_body(detail)
    return [_JSON, (b"content-length", str(len(body)).encode())], body


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that yields the body read already, then the original's messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
