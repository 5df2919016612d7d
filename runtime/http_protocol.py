"""uvicorn's httptools protocol, with coalesced writes, bounded request heads and direct answers.

Coalescing: responses leave through runtime/http_writes.py (one system call per
connection and loop iteration, a finished answer written in one piece).

Bounded heads: uvicorn's httptools protocol has no limit on the request line and headers,
neither in size nor in time, so a client could make it buffer megabytes of one header
or keep a connection open forever by trickling a byte every few seconds. Here a head
(request line and headers) is fed to the parser at most `max_bytes` at a time and is
refused with 431 as soon as it grows past that or past `max_count` headers; one that is
not complete `timeout_seconds` after its first byte (or after the connection opened) is
answered 408.

One timer per connection: uvicorn arms a keep-alive timer after every response and
cancels it at the next request's first byte, which measured as 2 µs of every read (a
twentieth of it). Here the connection keeps two deadlines, the head's and the idle
keep-alive's (uvicorn's `timeout_keep_alive`, same meaning), and one timer that is re-armed
only when it fires: setting a deadline is a number stored per request.

Direct answers: for a GET or HEAD without a body on a plain path, the protocol first asks
the app's edge (edge.pipeline's `direct`) for the whole answer. The hottest route, the
customer read, answers there, before uvicorn builds its request cycle, ASGI scope and
messages: measured side by side with wrk, those were a sixth of a read's cost. The edge
runs the same steps for it as for every other request; anything the edge does not take,
and every request pipelined behind an answer in progress, goes through uvicorn's way
unchanged (its scope is built then, by uvicorn's own code).

The answer's coroutine is stepped by the protocol, not by an asyncio Task: creating and
finishing a Task measured 3 µs of every read, and the first step now runs as the headers
complete instead of an iteration later. Each later step runs when the future it awaited is
done (a bare yield, as asyncio.sleep(0) makes, waits one iteration). The one rule for code
on this path: no asyncio.timeout() or anything else that needs the current Task (the read
side waits with futures and timers instead); awaiting anything but a future is refused as
a Task would refuse it, thrown back in, and becomes the edge's 500.

The class is handed to uvicorn through its documented `http=` setting, bound to its
limits by `protocol_class`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from edge.errors import error_body
from edge.pipeline import COMMON_HEADERS, RAW_CYCLE_KEY, Answer
from runtime.http_writes import CoalescingTransport, response_bytes

log = logging.getLogger("customers.http")

TOO_LARGE = "Request header fields too large."
TIMED_OUT = "Request header timeout."
# After a refusal the connection is half-closed and the client's remaining bytes are read
# and dropped for a moment: closing with unread input would reset the connection, and a
# reset can destroy the answer before the client reads it (RFC 9112, section 9.6).
LINGER_SECONDS = 1.0
LINGER_BYTES = 256 * 1024
_HEADER_LINE_OVERHEAD = len(b": \r\n")


@dataclass(frozen=True)
class HeaderLimits:
    """What the request line and headers of one request may cost."""

    max_bytes: int = 16 * 1024
    max_count: int = 100
    timeout_seconds: float = 10.0


def refusal(status: HTTPStatus, detail: str, extra: list[tuple[bytes, bytes]]) -> bytes:
    """A complete `Connection: close` response with the JSON error body."""
    body = error_body(detail)
    headers = [
        *extra,
        *COMMON_HEADERS,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Unused:
    def set(self) -> None:
        pass


class DirectCycle:
    """One direct answer in progress: the coroutine making it, and what the base protocol
    reads and writes of its request's cycle (pipelining, disconnects, shutdown)."""

    __slots__ = (
        "answering",
        "disconnected",
        "head",
        "keep_alive",
        "more_body",
        "protocol",
        "response_complete",
    )
    message_event = _Unused()  # nothing waits for the body of a request without one

    def __init__(
        self,
        protocol: CoalescingHttpToolsProtocol,
        answering: Coroutine[Any, Any, Answer],
        head: bool,
        keep_alive: bool,
    ) -> None:
        self.protocol = protocol
        self.answering = answering
        self.head = head
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.more_body = False

    def wake(self, _: object = None) -> None:
        """Go on answering: what the answer awaited is done."""
        self.protocol._advance(self)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a CoalescingTransport, with bounded request heads.

    A connection is "in a head" from its opening, and again from the end of each request,
    until the next request's headers are complete. Bytes arriving then are counted before
    the parser sees them. The parser's own callbacks count the URL and each header line
    too, which also bounds a pipelined head that starts in the middle of a read.
    """

    header_limits: ClassVar[HeaderLimits] = HeaderLimits()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._max_head_bytes = self.header_limits.max_bytes
        self._max_headers = self.header_limits.max_count
        self._in_head = True
        self._head_received = 0  # bytes fed to the parser since this head began
        self._head_parsed = 0  # bytes of the URL and the complete header lines
        self._header_count = 0
        # When the head in progress must be complete (None between heads), and when an idle
        # kept-alive connection closes (None unless idle). One timer checks both.
        self._head_deadline: float | None = None
        self._idle_deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._refused = False
        self._refusal: bytes | None = None  # an answer waiting for responses in progress
        self._lingered = 0
        # The edge's direct answers (None for other apps, or a configuration they would
        # bypass: a root path, or uvicorn's concurrency limit, which the service never sets).
        self._direct = (
            getattr(self.app, "direct", None)
            if not self.root_path and self.limit_concurrency is None
            else None
        )

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, CoalescingTransport(transport, self.loop)))
        self._begin_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._linger(len(data))
            return
        self._idle_deadline = None  # what uvicorn's keep-alive timer stops at
        while data and not self._refused and not self.transport.is_closing():
            if self._in_head:
                # A byte of a new request: the deadline runs from here (or from the opening).
                if self._head_deadline is None:
                    self._begin_head()
                room = self._max_head_bytes - self._head_received
                if room <= 0:
                    self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, TOO_LARGE)
                    return
                piece, data = data[:room], data[room:]
                self._head_received += len(piece)
            else:
                piece, data = data, b""
            self._feed(piece)

    def _feed(self, data: bytes) -> None:
        # uvicorn's data_received, less its keep-alive timer (see the module docstring).
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    # Parser callbacks: after a refusal the parser may still run to the end of the piece
    # it was given (at most `max_bytes`); nothing of that reaches the application.
    def on_message_begin(self) -> None:
        if self._refused:
            return
        self._head_parsed = 0
        self._header_count = 0
        # Not idle from here on. A direct answer made at once ends inside the parser and
        # sets the idle deadline, with the next request of the same read already behind it.
        self._idle_deadline = None
        if self._head_deadline is None:
            self._begin_head()
        # What uvicorn's on_message_begin sets, less the ASGI scope: a direct answer needs
        # none, and `_asgi_scope` builds it for the others.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    # These run for every request (on_header for every header): the counting is inline
    # and the base class is called directly, each step a little cheaper than a call more.
    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._head_parsed += len(url)
        if self._head_parsed > self._max_head_bytes:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, TOO_LARGE)
            return
        HttpToolsProtocol.on_url(self, url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        self._head_parsed += len(name) + len(value) + _HEADER_LINE_OVERHEAD
        if self._head_parsed > self._max_head_bytes or self._header_count > self._max_headers:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, TOO_LARGE)
            return
        HttpToolsProtocol.on_header(self, name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._head_deadline = None
        if self._direct is not None and self._answered_directly():
            return
        self._asgi_scope()
        HttpToolsProtocol.on_headers_complete(self)
        if self.cycle is not None:  # lets a finished answer skip the ASGI send messages
            self.cycle.scope[RAW_CYCLE_KEY] = self.cycle  # type: ignore[literal-required]

    def _asgi_scope(self) -> None:
        """The request's ASGI scope, by uvicorn's own on_message_begin (which also resets the
        URL and headers gathered since: they are put back)."""
        url, headers, expect_100_continue = self.url, self.headers, self.expect_100_continue
        HttpToolsProtocol.on_message_begin(self)
        self.url, self.expect_100_continue = url, expect_100_continue
        self.headers.extend(headers)  # the scope's own list

    def _answered_directly(self) -> bool:
        """Start answering this request without an ASGI cycle, if the app offers it one."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            return False  # pipelined behind a response in progress: queued as usual
        parser = self.parser
        url = self.url
        if not url.isascii() or parser.get_http_version() != "1.1" or parser.should_upgrade():
            return False
        # (`in` on str: on bytes it first tries the operand as an int, and fails, each time)
        path = url.decode("ascii")
        if not path.startswith("/") or "?" in path or "%" in path or "#" in path:
            return False
        method = parser.get_method().decode("ascii")
        if method != "GET" and method != "HEAD":
            return False
        assert self._direct is not None
        answering = self._direct(method, path, self.headers)
        if answering is None:
            return False
        direct = DirectCycle(self, answering, method == "HEAD", parser.should_keep_alive())
        self.cycle = direct  # type: ignore[assignment]
        self._advance(direct)
        return True

    def _advance(self, cycle: DirectCycle, error: Exception | None = None) -> None:
        """Step the answer's coroutine to its next wait, or to its end and the answer."""
        try:
            answering = cycle.answering
            waiting = answering.send(None) if error is None else answering.throw(error)
        except StopIteration as finished:
            self._answer(cycle, finished.value)
            return
        except BaseException:  # the edge answers every Exception: this is an interrupt
            if not self.transport.is_closing():
                self.transport.close()
            raise
        if waiting is None:  # a bare yield (asyncio.sleep(0)): on with the next iteration
            self.loop.call_soon(cycle.wake)
            return
        if not getattr(waiting, "_asyncio_future_blocking", False):  # refused, as a Task would
            refusal = TypeError(f"a direct answer awaited {waiting!r}, not an asyncio future")
            self.loop.call_soon(self._advance, cycle, refusal)  # thrown in: the edge's 500
            return
        waiting._asyncio_future_blocking = False  # taken, as a Task takes the futures it awaits
        waiting.add_done_callback(cycle.wake)

    def _answer(self, cycle: DirectCycle, answer: Answer) -> None:
        if cycle.disconnected:
            return
        if self.flow.write_paused:  # the client is not reading: wait until it does
            task = self.loop.create_task(self._answer_when_drained(cycle, answer))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            return
        status, headers, body = answer
        whole = response_bytes(
            self.server_state.default_headers,
            status,
            headers,
            body if not cycle.head else b"",
            keep_alive=cycle.keep_alive,
        )
        self.transport.write(whole)
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    async def _answer_when_drained(self, cycle: DirectCycle, answer: Answer) -> None:
        await self.flow.drain()  # also ends when the connection is lost (then disconnected)
        self._answer(cycle, answer)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_head = True
        self._head_received = 0
        cycle: object = self.cycle
        if type(cycle) is not DirectCycle:  # a direct answer's cycle has no body to end
            HttpToolsProtocol.on_message_complete(self)

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a parse error after a refusal: the refusal was the answer
            super().send_400_response(msg)

    def _begin_head(self) -> None:
        self._head_deadline = self.loop.time() + self.header_limits.timeout_seconds
        self._arm(self._head_deadline)

    def _arm(self, due: float) -> None:
        """Have the timer fire by `due`; one already due by then is left as it is."""
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(due, self._check_deadlines)
        self._timer_due = due

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_deadlines(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        head, idle = self._head_deadline, self._idle_deadline
        if idle is not None and now >= idle:
            self.transport.close()  # what uvicorn's timeout_keep_alive_handler does
        elif head is not None and now >= head:
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, TIMED_OUT)
        elif head is not None or idle is not None:  # later deadlines than the armed one
            self._arm(min(deadline for deadline in (head, idle) if deadline is not None))
        # else a request is being answered: its response's end sets the idle deadline

    def _refuse(self, status: HTTPStatus, detail: str) -> None:
        """Answer `status` once the responses in progress are out, then close."""
        if self._refused:
            return
        self._refused = True
        self._cancel_timer()
        log.info("refused a request head with %d: %s", status.value, detail)
        self._refusal = refusal(status, detail, self.server_state.default_headers)
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind responses still being written: answered after them,
            # as an answer now would land inside one. Nothing more is read meanwhile.
            self.flow.pause_reading()
            return
        self._send_refusal()

    def on_response_complete(self) -> None:
        # uvicorn's, with the idle deadline where it arms its keep-alive timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_deadline = self.loop.time() + self.timeout_keep_alive
            self._arm(self._idle_deadline)
        if self._refusal is not None and self.cycle.response_complete:
            self._send_refusal()

    def _send_refusal(self) -> None:
        """Send the refusal, then half-close and linger briefly before closing."""
        answer, self._refusal = self._refusal, None
        if answer is None or self.transport.is_closing():
            return
        self.transport.write(answer)
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self._close)

    def _linger(self, size: int) -> None:
        self._lingered += size
        if self._lingered > LINGER_BYTES:
            self._close()

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def protocol_class(limits: HeaderLimits) -> type[CoalescingHttpToolsProtocol]:
    """The class for uvicorn's `http=` setting, bound to `limits` (uvicorn instantiates it)."""

    class BoundedHttpToolsProtocol(CoalescingHttpToolsProtocol):
        header_limits = limits

    return BoundedHttpToolsProtocol
