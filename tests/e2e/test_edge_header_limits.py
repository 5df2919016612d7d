"""Request heads are bounded in size and in time (a defect: uvicorn's httptools had neither).

Before, ten unfinished 10 MB headers held 120 MB in the server, and 200 connections that
sent a header byte every few seconds were all still open after 30 s. Now a head (request
line and headers) past MAX_HEADER_BYTES or MAX_HEADER_COUNT is answered 431 as soon as it
crosses the limit, and one not complete HEADER_TIMEOUT_SECONDS after it began is answered
408; both then close. The hostile cases run against the real `customers serve` process
over raw sockets; the exact boundaries run against the same server configuration
(`uvicorn_config`) in this process, around a minimal application.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from runtime.processes import free_port
from runtime.server_config import uvicorn_config
from runtime.settings import Settings
from tests.support.raw_http import Answer, Reader, connect
from tests.support.serve_process import serve
from tests.support.waiting import wait_until

TOO_LARGE = {"detail": "Request header fields too large."}
TIMED_OUT = {"detail": "Request header timeout."}
MAX_HEADER_BYTES = 16 * 1024  # the defaults, which the served process keeps
MAX_HEADER_COUNT = 100
SERVE_HEADER_TIMEOUT = 2.0
MARGIN = 5.0  # on top of any deadline the server keeps: a busy 2-core machine is slow
ANSWER_WAIT = 10.0  # far beyond any honest answer
HUGE_VALUE = 10 * 1024 * 1024
CHUNK = 64 * 1024
RSS_LIMIT_BYTES = 200 * 1024 * 1024


def get(path: str = "/healthz", extra: bytes = b"") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n".encode() + extra + b"\r\n"


def head_of_size(total: int) -> bytes:
    """A GET whose request line and headers, final empty line included, are `total` bytes."""
    start = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: "
    return start + b"p" * (total - len(start) - len(b"\r\n\r\n")) + b"\r\n\r\n"


def with_headers(count: int) -> bytes:
    """A GET with `count` headers in all (Host included)."""
    return get(extra=b"".join(b"X-H%d: v\r\n" % number for number in range(count - 1)))


def exchange(port: int, request: bytes) -> Answer:
    with connect(port) as sock:
        sock.sendall(request)
        return Reader(sock).answer()


def assert_refused(answer: Answer, status: int, detail: dict[str, str]) -> None:
    assert answer.status == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    assert answer.json() == detail


# Hostile clients against the real `customers serve` process


@dataclass
class Sender:
    """One connection sending a 10 MB header value, a chunk at a time."""

    sock: socket.socket
    sent: int = 0
    answered_at: int | None = None  # bytes sent when the answer (or the close) showed up
    answer: Answer | None = None

    def step(self) -> None:
        try:
            self.sock.sendall(b"a" * CHUNK)
            self.sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            self.answered_at = self.sent  # closed by the server while we were still sending
        if self.answered_at is None:
            ready, _, _ = select.select([self.sock], [], [], 0)
            if ready or self.sent >= HUGE_VALUE:
                self.answered_at = self.sent
        if self.answered_at is not None:
            self.answer = Reader(self.sock).answer()


def send_huge_headers(port: int, connections: int) -> list[Sender]:
    """Interleaved 10 MB header values; each sender stops once the server has answered."""
    senders = [Sender(connect(port)) for _ in range(connections)]
    for sender in senders:
        sender.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Huge: ")
    for _ in range(HUGE_VALUE // CHUNK):
        busy = [sender for sender in senders if sender.answered_at is None]
        if not busy:
            break
        for sender in busy:
            sender.step()
        select.select([sender.sock for sender in busy], [], [], 0.005)  # let the server read
    for sender in senders:
        sender.sock.close()
    return senders


@dataclass
class Loris:
    """A connection that sends its head one byte per round and never finishes it."""

    sock: socket.socket
    opened: float
    reader: Reader = field(init=False)
    closed_after: float | None = None
    bytes_sent: int = 0

    def __post_init__(self) -> None:
        self.reader = Reader(self.sock)

    def trickle(self) -> None:
        head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"s" * 1000
        try:
            self.sock.sendall(head[self.bytes_sent : self.bytes_sent + 1])
            self.bytes_sent += 1
        except (BrokenPipeError, ConnectionResetError):
            self.reader.eof = True

    def read(self) -> None:
        self.reader.fill()
        if self.reader.eof:
            self.closed_after = time.monotonic() - self.opened


def slowloris(port: int, connections: int, interval: float, deadline: float) -> list[Loris]:
    """Trickle a byte on every open connection each `interval` until all are closed."""
    lorises = [Loris(connect(port), time.monotonic()) for _ in range(connections)]
    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        open_ = [loris for loris in lorises if loris.closed_after is None]
        if not open_:
            break
        for loris in open_:
            loris.trickle()
        # The pause between bytes is itself a wait on the sockets: any close shows up here.
        ready, _, _ = select.select([loris.sock for loris in open_], [], [], interval)
        for loris in open_:
            if loris.sock in ready or loris.reader.eof:
                loris.read()
    for loris in lorises:
        loris.sock.close()
    return lorises


class RssSampler:
    """The largest VmRSS a process reaches while the sampler runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(self.rss())

    def __enter__(self) -> RssSampler:
        self.samples.append(self.rss())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.rss())


@pytest.mark.slow
def test_hostile_heads_are_refused_early_and_the_server_stays_small_and_serving(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {"HEADER_TIMEOUT_SECONDS": str(SERVE_HEADER_TIMEOUT)}
    with serve(tmp_path / "data", redis_url, redis_prefix, extra_env=env) as running:
        port = int(running.base_url.rsplit(":", 1)[1])
        with RssSampler(running.process.pid) as rss:
            # (1) the ten unfinished 10 MB headers
            senders = send_huge_headers(port, connections=10)
            # (2) too many headers
            crowded = exchange(port, with_headers(10 * MAX_HEADER_COUNT))
            # (3) 50 slowloris connections trickling a byte every half second
            lorises = slowloris(port, 50, 0.5, deadline=SERVE_HEADER_TIMEOUT + 3 * MARGIN)
        # (4) an honest client on a keep-alive connection is served as before
        with connect(port) as sock:
            reader = Reader(sock)
            sock.sendall(get())
            first = reader.answer()
            sock.sendall(get())
            second = reader.answer()

    for sender in senders:
        assert sender.answer is not None
        assert_refused(sender.answer, 431, TOO_LARGE)
        assert sender.answered_at is not None
        assert sender.answered_at < HUGE_VALUE // 4, "answered only after most was sent"
    assert_refused(crowded, 431, TOO_LARGE)
    for loris in lorises:
        assert loris.closed_after is not None, "a slowloris connection is still open"
        assert SERVE_HEADER_TIMEOUT - 0.1 <= loris.closed_after <= SERVE_HEADER_TIMEOUT + MARGIN
        assert loris.bytes_sent > 1  # it kept trickling, and that did not extend its time
    assert_refused(lorises[0].reader.answer(), 408, TIMED_OUT)  # read in full already
    assert (first.status, second.status) == (200, 200)
    assert first.headers["x-content-type-options"] == "nosniff"
    # (5) nothing of the hostile bytes was held
    assert max(rss.samples) < RSS_LIMIT_BYTES, rss.samples
    report(senders, lorises, rss)


def report(senders: list[Sender], lorises: list[Loris], rss: RssSampler) -> None:
    """The measured numbers, for `pytest -s`."""
    answered = [sender.answered_at or 0 for sender in senders]
    closed = [loris.closed_after or 0.0 for loris in lorises]
    print(
        f"\n431 after at most {max(answered)} bytes sent (of {HUGE_VALUE});"
        f" slowloris closed after {min(closed):.2f}-{max(closed):.2f} s;"
        f" RSS {min(rss.samples) / 2**20:.0f}-{max(rss.samples) / 2**20:.0f} MiB"
    )


# Exact bounds, against the same server configuration in this process


async def minimal_app(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
    """Answers every request 200 "ok"; enough to see what reaches the application."""
    if scope["type"] == "lifespan":
        for kind in ("startup", "shutdown"):
            await receive()
            await send({"type": f"lifespan.{kind}.complete"})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 5.0  # uvicorn's timeout_keep_alive, which the service keeps


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    store = tmp_path_factory.mktemp("limits") / "events.sqlite"
    settings = Settings(EVENT_STORE_URL=f"sqlite:///{store}", HEADER_TIMEOUT_SECONDS=HEADER_TIMEOUT)
    chosen = free_port()
    config = uvicorn_config(minimal_app, settings, host="127.0.0.1", port=chosen)
    assert config.timeout_keep_alive == KEEP_ALIVE
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, deadline=10)
    yield chosen
    server.should_exit = True
    thread.join(10)


def test_a_head_of_exactly_the_limit_is_served_and_one_byte_more_is_431(port: int) -> None:
    assert exchange(port, head_of_size(MAX_HEADER_BYTES)).status == 200
    assert_refused(exchange(port, head_of_size(MAX_HEADER_BYTES + 1)), 431, TOO_LARGE)


def test_the_header_count_limit_is_exact(port: int) -> None:
    assert exchange(port, with_headers(MAX_HEADER_COUNT)).status == 200
    assert_refused(exchange(port, with_headers(MAX_HEADER_COUNT + 1)), 431, TOO_LARGE)


def test_a_long_url_counts_toward_the_same_limit(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(get("/" + "u" * MAX_HEADER_BYTES))
        reader = Reader(sock)
        assert_refused(reader.answer(), 431, TOO_LARGE)
        assert reader.wait_closed(MARGIN)


def test_pipelined_requests_are_answered_in_order_and_an_oversized_one_closes(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(get() * 3 + head_of_size(2 * MAX_HEADER_BYTES))
        reader = Reader(sock)
        statuses = [reader.answer().status for _ in range(4)]
        assert reader.wait_closed(MARGIN)
    assert statuses == [200, 200, 200, 431]


def test_a_head_sent_in_many_small_pieces_within_the_deadline_is_served(port: int) -> None:
    request = get(extra=b"X-Long: " + b"v" * 2000 + b"\r\n")
    with connect(port) as sock:
        for start in range(0, len(request), 100):
            sock.sendall(request[start : start + 100])
        assert Reader(sock).answer().status == 200


@pytest.mark.slow
def test_a_connection_that_sends_nothing_is_answered_408_and_closed(port: int) -> None:
    with connect(port) as sock:
        opened = time.monotonic()
        reader = Reader(sock)
        answer = reader.answer()
        assert reader.wait_closed(MARGIN)
        waited = time.monotonic() - opened
    assert_refused(answer, 408, TIMED_OUT)
    assert HEADER_TIMEOUT - 0.1 <= waited <= HEADER_TIMEOUT + MARGIN


@pytest.mark.slow
def test_an_idle_keep_alive_connection_outlives_the_header_timeout(port: int) -> None:
    with connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(get())
        assert reader.answer().status == 200
        # Idle for twice the header timeout, within uvicorn's 5 s keep-alive: still open.
        assert not reader.wait_closed(2 * HEADER_TIMEOUT)
        sock.settimeout(ANSWER_WAIT)
        sock.sendall(get())
        assert reader.answer().status == 200


@pytest.mark.slow
def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(port: int) -> None:
    """The keep-alive deadline is the protocol's own (one timer per connection, not one
    per request): an idle connection still closes when uvicorn's would."""
    with connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(get())
        assert reader.answer().status == 200
        answered = time.monotonic()
        assert reader.wait_closed(KEEP_ALIVE + MARGIN)
        idle = time.monotonic() - answered
    assert KEEP_ALIVE - 0.1 <= idle <= KEEP_ALIVE + MARGIN


@pytest.mark.slow
def test_a_head_begun_on_an_idle_connection_keeps_its_own_shorter_deadline(port: int) -> None:
    """The timer armed for the idle deadline is brought forward for a head due earlier."""
    with connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(get())
        assert reader.answer().status == 200
        # Idle past the connection's first head deadline: its timer now waits for the idle one.
        assert not reader.wait_closed(HEADER_TIMEOUT + 0.2)
        sock.settimeout(ANSWER_WAIT)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # begun, never finished
        begun = time.monotonic()
        answer = reader.answer()
        assert reader.wait_closed(MARGIN)
        waited = time.monotonic() - begun
    assert_refused(answer, 408, TIMED_OUT)
    # Not held until the idle deadline, which is 3.8 s away when the head begins.
    assert HEADER_TIMEOUT - 0.1 <= waited < HEADER_TIMEOUT + 1.5


@pytest.mark.slow
def test_a_trickled_head_after_a_keep_alive_request_times_out(port: int) -> None:
    """uvicorn's keep-alive timer stops at the first byte; the head's deadline does not."""
    with connect(port) as sock:
        sock.sendall(get())
        assert Reader(sock).answer().status == 200
        lorises = [Loris(sock, time.monotonic())]
        ends = time.monotonic() + HEADER_TIMEOUT + MARGIN
        while lorises[0].closed_after is None and time.monotonic() < ends:
            lorises[0].trickle()
            if select.select([sock], [], [], 0.2)[0] or lorises[0].reader.eof:
                lorises[0].read()
    assert lorises[0].closed_after is not None
    assert HEADER_TIMEOUT - 0.1 <= lorises[0].closed_after <= HEADER_TIMEOUT + MARGIN
    assert_refused(lorises[0].reader.answer(), 408, TIMED_OUT)  # read in full already
