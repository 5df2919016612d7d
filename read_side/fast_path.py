"""GET and HEAD /api/customers/<segment> answered in front of the framework.

The hottest route skips routing, dependency injection and response validation: the answer
comes from `CustomerReader.reply`, the same call the documented route makes. The edge
pipeline around it has joined repeated headers, bounded the request, and times, logs and
renders failures for every path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from edge.pipeline import RESPOND_KEY, ROUTE_KEY, ASGIApp, Receive, Scope, Send
from read_side.customer_reader import CustomerReader

PATH_PREFIX = "/api/customers/"
ROUTE = "/api/customers/{customer_id}"


class CustomerFastPath:
    """ASGI app answering GET and HEAD /api/customers/<segment>; the rest goes to `app`."""

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
