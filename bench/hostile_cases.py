"""The hostile clients of bench/hostile.py: the worst requests, and slowloris connections.

HOSTILE_CASES are sent one after another in a loop by one client, each on a new
connection; every one must be answered 4xx with a JSON body, or closed by the server,
within ANSWER_TIMEOUT_SECONDS. Slowloris connections trickle the headers of a request they
never finish, opening a new connection whenever the server closes one. Loops are bounded
in count and time, and traffic only goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.common_http import HOST

ANSWER_TIMEOUT_SECONDS = 5.0  # a hostile request unanswered and still open by then "hung"
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_HOSTILE_REQUESTS = 100_000  # per phase, whatever the duration
TRICKLE_SECONDS = 0.5  # a slowloris connection sends one more header byte this often
MIB = 1024 * 1024


@dataclass(frozen=True)
class Keys:
    staff: str
    producer: str
    admin: str


@dataclass(frozen=True)
class HostileCase:
    """One hostile request: the byte strings to send, in order, on a fresh connection."""

    name: str
    build: Callable[[Keys], list[bytes]]


def post(
    path: str,
    body: bytes,
    key: str,
    *,
    length: int | None = None,
    extra: Sequence[tuple[str, str]] = (),
    authorization: Sequence[str] | None = None,
) -> bytes:
    """The bytes of a POST: its head (Content-Length declared, unless chunked) and body."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", "Content-Type: application/json"]
    lines += [f"Authorization: {value}" for value in authorization or [f"Token {key}"]]
    lines += [f"{name}: {value}" for name, value in extra]
    if not any(name.lower() == "transfer-encoding" for name, _ in extra):
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def order(body: bytes, **options: Any) -> Callable[[Keys], list[bytes]]:
    """POST /api/orders with the producer key."""
    return lambda keys: [post("/api/orders", body, keys.producer, **options)]


def refund(body: bytes) -> Callable[[Keys], list[bytes]]:
    """POST /api/orders/o1/refunds (an order the sample data holds) with the admin key."""
    return lambda keys: [post("/api/orders/o1/refunds", body, keys.admin)]


def declared_50_mb(keys: Keys) -> list[bytes]:
    """A Content-Length of 50 MB, then only 1 KiB of it (the client waits, then closes)."""
    head = post("/api/orders", b"", keys.producer, length=50 * MIB)
    return [head, b'{"customer_id":1,"amount":"' + b"9" * 1000]


def chunked_1_mib(keys: Keys) -> list[bytes]:
    """A 1 MiB body in 64 chunks of 16 KiB, each written as the server takes it."""
    head = post("/api/orders", b"", keys.producer, extra=[("Transfer-Encoding", "chunked")])
    chunk = b"4000\r\n" + b"7" * 0x4000 + b"\r\n"
    return [head, *([chunk] * 64), b"0\r\n\r\n"]


def repeated_authorization(valid_twice: bool) -> Callable[[Keys], list[bytes]]:
    """A valid order with two Authorization headers (the same key twice, or a bad second)."""
    body = b'{"customer_id":1,"amount":"12.34"}'

    def build(keys: Keys) -> list[bytes]:
        second = keys.producer if valid_twice else "not-a-key"
        values = [f"Token {keys.producer}", f"Token {second}"]
        return [post("/api/orders", body, keys.producer, authorization=values)]

    return build


DEEP_ARRAY = b"[" * 5000 + b"]" * 5000
HOSTILE_CASES: tuple[HostileCase, ...] = (
    HostileCase("order_amount_1e999999999", order(b'{"customer_id":1,"amount":1e999999999}')),
    HostileCase("refund_amount_1e999999999", refund(b'{"amount":1e999999999}')),
    HostileCase("order_amount_1e300000", order(b'{"customer_id":1,"amount":1e300000}')),
    HostileCase("order_amount_text_1e300000", order(b'{"customer_id":1,"amount":"1e300000"}')),
    HostileCase("refund_amount_1e300000", refund(b'{"amount":1e300000}')),
    HostileCase("order_array_5000_deep", order(DEEP_ARRAY)),
    HostileCase("refund_array_5000_deep", refund(DEEP_ARRAY)),
    HostileCase("order_declared_50_mb", declared_50_mb),
    HostileCase("order_chunked_1_mib", chunked_1_mib),
    HostileCase("order_amount_nan", order(b'{"customer_id":1,"amount":NaN}')),
    HostileCase("order_amount_infinity", order(b'{"customer_id":1,"amount":Infinity}')),
    HostileCase("order_amount_text_nan", order(b'{"customer_id":1,"amount":"NaN"}')),
    HostileCase("refund_amount_text_infinity", refund(b'{"amount":"-Infinity"}')),
    HostileCase(
        "order_id_lone_surrogate",
        order(b'{"customer_id":1,"amount":"12.34","order_id":"\\ud800"}'),
    ),
    HostileCase("refund_amount_lone_surrogate", refund(b'{"amount":"\\ud800"}')),
    HostileCase(
        "order_id_surrogate_bytes",  # "\ud800" encoded as UTF-8 would be: not valid UTF-8
        order(b'{"customer_id":1,"amount":"12.34","order_id":"\xed\xa0\x80"}'),
    ),
    HostileCase("order_authorization_twice", repeated_authorization(valid_twice=True)),
    HostileCase("order_authorization_valid_and_bad", repeated_authorization(valid_twice=False)),
)


@dataclass
class CaseTally:
    sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)  # "422", "closed", "hung", ...
    non_json: int = 0
    answer_ms: list[float] = field(default_factory=list)

    def count(self, outcome: str, json_body: bool, seconds: float) -> None:
        self.sent += 1
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1
        if outcome.isdigit() and not json_body:
            self.non_json += 1
        self.answer_ms.append(seconds * 1000)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status of an HTTP/1.1 response and whether its body is a JSON object."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length: int | None = None
    content_type = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"content-type":
            content_type = value.strip().lower()
    body = await reader.readexactly(length) if length is not None else await reader.read(MIB)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    return status, content_type.startswith(b"application/json") and isinstance(parsed, dict)


async def send_case(port: int, parts: list[bytes]) -> tuple[str, bool]:
    """Send one hostile request; its status, or "closed" / "hung" / "refused", and JSON-ness.

    The body is written by a task of its own while the answer is read, so an early answer
    (413 after the head) is read even as the server stops reading the rest.
    """
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port), CONNECT_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError):
        return "refused", False

    async def feed() -> None:
        with contextlib.suppress(OSError):
            for part in parts:
                writer.write(part)
                await writer.drain()

    feeder = asyncio.create_task(feed())
    try:
        status, json_body = await asyncio.wait_for(read_answer(reader), ANSWER_TIMEOUT_SECONDS)
        return str(status), json_body
    except TimeoutError:
        return "hung", False
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError):
        return "closed", False  # the server closed (or reset) the connection unanswered
    finally:
        feeder.cancel()
        writer.close()
        with contextlib.suppress(OSError, TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def hostile_loop(
    port: int, keys: Keys, stop: asyncio.Event, tallies: dict[str, CaseTally]
) -> None:
    """One client: the cases in turn, one request at a time, until stopped (or the cap)."""
    built = [(case.name, case.build(keys)) for case in HOSTILE_CASES]
    for number, (name, parts) in enumerate(itertools.cycle(built)):
        if stop.is_set() or number >= MAX_HOSTILE_REQUESTS:
            return
        started = time.perf_counter()
        outcome, json_body = await send_case(port, parts)
        tallies.setdefault(name, CaseTally()).count(
            outcome, json_body, time.perf_counter() - started
        )


@dataclass
class SlowlorisTally:
    opened: int = 0
    closed_by_server: int = 0
    answered: dict[str, int] = field(default_factory=dict)
    seconds_to_close: list[float] = field(default_factory=list)
    open_at_end: int = 0
    refused: int = 0


async def slowloris(port: int, stop: asyncio.Event, tally: SlowlorisTally) -> None:
    """Trickle a request's headers a byte at a time; reconnect whenever the server closes."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port), CONNECT_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError):
            tally.refused += 1
            await asyncio.sleep(TRICKLE_SECONDS)
            continue
        tally.opened += 1
        opened = time.monotonic()
        trickle = itertools.cycle(b"X-Slow: " + b"z" * 64 + b"\r\n")
        closed = False
        try:
            writer.write(f"GET /api/customers/1 HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(4096), TRICKLE_SECONDS)
                except TimeoutError:
                    writer.write(bytes([next(trickle)]))
                    await writer.drain()
                    continue
                if data[9:12].isdigit():
                    status = data[9:12].decode()
                    tally.answered[status] = tally.answered.get(status, 0) + 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader.read(), TRICKLE_SECONDS)
                closed = True
                break
        except OSError:
            closed = True
        finally:
            writer.close()
        if closed:
            tally.closed_by_server += 1
            tally.seconds_to_close.append(time.monotonic() - opened)
        else:
            tally.open_at_end += 1
