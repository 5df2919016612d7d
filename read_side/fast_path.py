"""GET and HEAD /api/customers/<segment> answered in front of the framework.

The hottest route skips routing, dependency injection and response validation: the answer
comes from `CustomerReader.reply`, the same call the documented route makes. The edge
pipeline around it has joined repeated headers, bounded the request, and times, logs and
renders failures for every path. The server may also ask the edge for this route's answer
directly, before any ASGI scope exists (edge.pipeline's `direct`); both ways end in
`answer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from edge.pipeline import (
    RESPOND_KEY,
    ROUTE_KEY,
    Answer,
    ASGIApp,
    Headers,
    Receive,
    Scope,
    Send,
)
from read_side.customer_reader import CustomerReader

PATH_PREFIX = "/api/customers/"
ROUTE = "/api/customers/{customer_id}"


class CustomerFastPath:
    """ASGI app answering GET and HEAD /api/customers/<segment>; the rest goes to `app`."""

    route = ROUTE

    def __init__(self, app: ASGIApp, reader: Callable[[], CustomerReader | None]) -> None:
        self._app = app
        self._reader = reader

    def answer(self, path: str, headers: Headers) -> Coroutine[Any, Any, Answer] | None:
        """The coroutine answering a GET or HEAD of `path`; None when `path` is not this
        route's (or the read side has not started)."""
        reader = self._reader()
        if (
            reader is None
            or not path.startswith(PATH_PREFIX)
            or len(path) == len(PATH_PREFIX)  # no id: no such route, as in the framework
            or "/" in path[len(PATH_PREFIX) :]
        ):
            return None
        authorization: bytes | None = None
        min_position = if_none_match = None
        for name, value in headers:
            if name == b"authorization":
                authorization = value
            elif name == b"x-min-position":
                min_position = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
        # The reader's own coroutine: its reply is the whole answer, headers and all.
        return reader.reply(path[len(PATH_PREFIX) :], authorization, min_position, if_none_match)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function handing back the coroutine that answers: one coroutine less
        # for every request to create and step through (the read path is the hottest).
        answering = (
            self.answer(scope.get("path", ""), scope["headers"])
            if scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
            else None
        )
        if answering is None:
            return self._app(scope, receive, send)
        scope[ROUTE_KEY] = ROUTE
        return _send(answering, scope, send)


async def _send(answering: Awaitable[Answer], scope: Scope, send: Send) -> None:
    status, headers, body = await answering
    respond = scope.get(RESPOND_KEY)
    if respond is not None:  # the edge pipeline: the whole answer at once
        unsent = respond(status, headers, body)
        if unsent is not None:
            await unsent
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
