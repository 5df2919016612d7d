"""How responses leave the server: coalesced into one system call, finished answers in one piece.

Coalescing: uvicorn writes a response's status line and headers, then its body, as two
`transport.write` calls, and uvloop sends each at once: two system calls per response,
which profiling showed to be the largest single cost of a small JSON answer. Here the
writes of one event loop iteration are gathered and sent together at the end of it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle


class CoalescingTransport:
    """A transport whose writes within one loop iteration leave in one system call."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:  # asked on every request: spared the __getattr__ detour
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading, flow control, extra info, abort) is the real transport.
        return getattr(self._transport, name)


def response_bytes(
    default_headers: list[tuple[bytes, bytes]],
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    keep_alive: bool,
) -> bytes:
    """A whole HTTP/1.1 response: status line, the server's headers (date, server), the
    answer's own (which carry its Content-Length), then the body (empty for HEAD).

    Written through the coalescing transport like every write, so it leaves at the end of
    the loop iteration with the other answers made in it. Sent at once instead, it costs
    fewer instructions per answer, but throughput fell by a fifth under load: each client
    got its answer, and sent its next request, while the loop was still busy, so requests
    arrived one by one and each loop iteration (and each pipelined Redis write) served
    fewer of them.
    """
    parts = [STATUS_LINE[status]]
    for name, value in default_headers:
        parts += (name, b": ", value, b"\r\n")
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if not keep_alive:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    parts.append(body)
    return b"".join(parts)


def respond_at_once(
    cycle: object, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> bool:
    """Write a whole response (status, headers, body) for `cycle` in one go.

    What uvicorn's `send` does for a `http.response.start` and a final
    `http.response.body`, without two coroutines and its per-header checks: the headers
    come from this service's own code (names and values it built, a request id it
    validated) and carry their Content-Length. Returns False, having written nothing,
    whenever uvicorn's own path must handle it (flow control, an access log, a response
    begun already); the caller then sends the ASGI messages.
    """
    if not isinstance(cycle, RequestResponseCycle):
        return False
    if cycle.response_started or cycle.disconnected or cycle.flow.write_paused:
        return False
    if cycle.access_log:
        return False
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    whole = response_bytes(
        cycle.default_headers,
        status,
        headers,
        body if cycle.scope["method"] != "HEAD" else b"",
        keep_alive=cycle.keep_alive,
    )
    cycle.transport.write(whole)
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True
