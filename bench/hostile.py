"""Hostile clients: read p99 and server memory while one client sends the worst bodies.

    python -m bench.hostile --quick       10 s per phase, about 35 s in all
    python -m bench.hostile --full        20 s per phase, two rounds
    python -m bench.hostile --duration 5 --rounds 1 --customers 500 --out /tmp/h.json

The issue's "must show": while one client sends the worst bodies in a loop, a second one
measures read p99, which stays within 1.5x of a quiet run's, and the server's RSS stays
under 200 MB.

1. A fresh PostgreSQL database gets N sample customers (bench.common_data), the order `o1`
   of customer 1 that the refund cases name, and a staff, a producer and an admin key.
2. `customers serve` (the all-in-one production command: write and read APIs and the
   projector in one process, one uvicorn worker) serves it on a free loopback port, with
   a fresh Redis key prefix; it is ready once its projector has made customer N readable.
3. Each round has a quiet phase and a hostile phase of the same length. In both, wrk (the
   read benchmark's script and parser, bench.read_path) requests random customers with
   the staff key. In the hostile phase, at the same time, one client sends the cases of
   HOSTILE_CASES one after another in a loop, each on a new connection (1e999999999 and
   1e300000 amounts, a 5,000-deep array, a 50 MB Content-Length with a few bytes sent, a
   1 MiB chunked body, NaN / Infinity, lone surrogates, repeated Authorization headers),
   and SLOWLORIS connections trickle the headers of a request they never finish, opening
   a new connection whenever the server closes one.
4. Every hostile request must be answered 4xx with a JSON body, or closed by the server,
   within ANSWER_TIMEOUT_SECONDS; anything else is counted as a failure by kind. The
   server's VmRSS is sampled every 100 ms throughout.

Loops are bounded in count and time, traffic only goes to 127.0.0.1, and the database and
key prefix are removed afterwards. Results go to bench/results/hostile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    RESULTS_DIR,
    cpu_seconds,
    fresh_postgres_database,
    fresh_redis_prefix,
    percentile,
    ratio,
    redis_url,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
ANSWER_TIMEOUT_SECONDS = 5.0  # a hostile request unanswered and still open by then "hung"
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_HOSTILE_REQUESTS = 100_000  # per phase, whatever the duration
RSS_INTERVAL_SECONDS = 0.1
TRICKLE_SECONDS = 0.5  # a slowloris connection sends one more header byte this often
WARM_UP_SECONDS = 2
MIB = 1024 * 1024

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"customers": 2000, "duration": 10, "rounds": 1},
    "full": {"customers": 20000, "duration": 20, "rounds": 2},
}
DEFAULTS: dict[str, Any] = {
    **PRESETS["quick"],
    "read_connections": 32,
    "slowloris": 50,
    # Shorter than the server's 10 s default, so that within a phase the server (once it
    # enforces it) closes each slowloris connection and the client opens another: more churn.
    "header_timeout": 4.0,
}


# The hostile requests


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


# The server and its memory


@contextmanager
def serving(env: dict[str, str], port: int, probe: str, staff: str, log: Path) -> Iterator[int]:
    """`customers serve` until the block ends; yields its pid once `probe` answers 2xx.

    Like bench.read_path.running, but the server's log goes to a file (a pipe nobody
    reads could fill and stall it) and the pid is handed out for the RSS sampler.
    """
    import httpx

    command = [str(Path(sys.executable).with_name("customers")), "serve"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        headers = {"Authorization": f"Token {staff}"}
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-500:]
                raise RuntimeError(f"customers serve exited: {tail}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://{HOST}:{port}{probe}", headers=headers).is_success:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("customers serve did not answer the probe in 60 s")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(25)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def own_cpu_seconds() -> float:
    """CPU seconds of this script and its ended children (wrk), user + system."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in KiB, from /proc/PID/status."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


class RssSampler:
    """A thread sampling a process's VmRSS every RSS_INTERVAL_SECONDS, with timestamps."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = memory_kib(self.pid).get("VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            self._stop.wait(RSS_INTERVAL_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, start: float, end: float) -> float | None:
        within = [kib for at, kib in self.samples if start <= at <= end]
        return round(max(within) / 1024, 1) if within else None


# The phases


def wrk_phase(port: int, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    from bench.read_path import run_wrk

    result = run_wrk(port, script, connections, seconds)
    errors = result.get("socket_errors") or ""
    timeouts = errors.rsplit("timeout", 1)[1].strip() if "timeout" in errors else "0"
    result["timeouts"] = int(timeouts) if timeouts.isdigit() else None
    return result


async def phase(
    hostile: bool,
    port: int,
    keys: Keys,
    script: Path,
    args: argparse.Namespace,
    sampler: RssSampler,
) -> dict[str, Any]:
    """One wrk run of the reads; in a hostile phase, with the hostile clients alongside."""
    stop = asyncio.Event()
    tallies: dict[str, CaseTally] = {}
    lorises = SlowlorisTally()
    clients: list[asyncio.Task[None]] = []
    server_cpu, client_cpu = cpu_seconds(sampler.pid), own_cpu_seconds()
    started = time.monotonic()
    if hostile:
        clients = [
            asyncio.create_task(slowloris(port, stop, lorises)) for _ in range(args.slowloris)
        ]
        clients.append(asyncio.create_task(hostile_loop(port, keys, stop, tallies)))
    read = await asyncio.to_thread(wrk_phase, port, script, args.read_connections, args.duration)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*clients), ANSWER_TIMEOUT_SECONDS + 5)
    ended = time.monotonic()
    server_after = cpu_seconds(sampler.pid)
    result: dict[str, Any] = {
        "kind": "hostile" if hostile else "quiet",
        "read": read,
        "seconds": round(ended - started, 2),
        "peak_rss_mb": sampler.peak_mb(started, ended),
        # CPU seconds the phase took: the server's, and this script's (with wrk, its child)
        "server_cpu_s": None
        if server_cpu is None or server_after is None
        else round(server_after - server_cpu, 2),
        "client_cpu_s": round(own_cpu_seconds() - client_cpu, 2),
    }
    if hostile:
        result["hostile_requests"] = tally_summary(tallies, ended - started)
        result["slowloris"] = slowloris_summary(lorises, args.slowloris)
    return result


def tally_summary(tallies: dict[str, CaseTally], seconds: float) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    answer_ms: list[float] = []
    for tally in tallies.values():
        answer_ms += tally.answer_ms
        for outcome, count in tally.statuses.items():
            by_status[outcome] = by_status.get(outcome, 0) + count
    sent = sum(tally.sent for tally in tallies.values())
    answered = {int(s): n for s, n in by_status.items() if s.isdigit()}
    non_json = sum(tally.non_json for tally in tallies.values())
    return {
        "sent": sent,
        "per_s": round(sent / seconds, 1) if seconds else None,
        "by_status": dict(sorted(by_status.items())),
        "answered_4xx": sum(n for s, n in answered.items() if 400 <= s < 500),
        "server_errors_5xx": sum(n for s, n in answered.items() if s >= 500),
        "other_answers": sum(n for s, n in answered.items() if s < 400),
        "non_json_answers": non_json,
        "closed_unanswered": by_status.get("closed", 0),
        "hung": by_status.get("hung", 0),
        "refused_connections": by_status.get("refused", 0),
        "answer_ms": {
            "p50": round(percentile(answer_ms, 0.5), 2) if answer_ms else None,
            "p99": round(percentile(answer_ms, 0.99), 2) if answer_ms else None,
            "max": round(max(answer_ms), 2) if answer_ms else None,
        },
        "by_case": {
            name: {
                "sent": tally.sent,
                "statuses": dict(sorted(tally.statuses.items())),
                "non_json": tally.non_json,
                "max_ms": round(max(tally.answer_ms), 2),
            }
            for name, tally in tallies.items()
        },
    }


def slowloris_summary(tally: SlowlorisTally, connections: int) -> dict[str, Any]:
    ages = tally.seconds_to_close
    return {
        "connections": connections,
        "opened": tally.opened,
        "closed_by_server": tally.closed_by_server,
        "answered": tally.answered,
        "seconds_to_close_median": round(statistics.median(ages), 2) if ages else None,
        "seconds_to_close_max": round(max(ages), 2) if ages else None,
        "open_at_end": tally.open_at_end,
        "refused": tally.refused,
    }


def refused(outcome: str, json_body: bool) -> bool:
    """Whether a hostile request ended as it must: 4xx with a JSON body, or closed."""
    if outcome == "closed":
        return True
    return outcome.isdigit() and 400 <= int(outcome) < 500 and json_body


def merge_hostile(phases: list[dict[str, Any]], warm_up: dict[str, Any]) -> dict[str, Any]:
    """The hostile requests of every hostile phase added up, and the warm-up's judged too."""
    total: dict[str, Any] = {"sent": 0, "by_status": {}}
    counters = (
        "answered_4xx", "server_errors_5xx", "other_answers", "non_json_answers",
        "closed_unanswered", "hung", "refused_connections",
    )  # fmt: skip
    for name in counters:
        total[name] = 0
    for entry in phases:
        requests = entry["hostile_requests"]
        total["sent"] += requests["sent"]
        for name in counters:
            total[name] += requests[name]
        for status, count in requests["by_status"].items():
            total["by_status"][status] = total["by_status"].get(status, 0) + count
    total["max_answer_ms"] = max(
        (entry["hostile_requests"]["answer_ms"]["max"] or 0 for entry in phases), default=None
    )
    # The requirement: every hostile request refused 4xx with JSON, or closed by the server.
    bad = ("server_errors_5xx", "other_answers", "non_json_answers", "hung", "refused_connections")
    warm_up_bad = [
        name for name, answer in warm_up.items() if not refused(answer["status"], answer["json"])
    ]
    total["warm_up_not_refused"] = warm_up_bad
    total["all_refused_or_closed"] = (
        total["sent"] > 0 and not any(total[name] for name in bad) and not warm_up_bad
    )
    return total


# Data


def prepare(store_url: str, customers: int) -> Keys:
    """Load `customers` sample customers and the order o1, and issue the three keys."""
    from decimal import Decimal

    from bench.common_data import load_sample
    from runtime.settings import event_store_env
    from write_side.application import CustomerService

    service = CustomerService(event_store_env(store_url))
    try:
        started = time.perf_counter()
        events = load_sample(service, customers).events
        service.place_order(1, Decimal("12.34"), order_id="o1")
        keys = Keys(
            staff=service.issue_api_key("bench-staff", "staff").key,
            producer=service.issue_api_key("bench-producer", "producer").key,
            admin=service.issue_api_key("bench-admin", "admin").key,
        )
        print(f"saved {events} events in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return keys
    finally:
        service.close()


def log_summary(log: Path) -> dict[str, Any]:
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
    return {"lines": len(lines), "errors": len(errors), "tail": lines[-15:] if errors else []}


def median_phase(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run["read"][key] for run in runs if run["read"].get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """This part's JSON -> the summary the targets read (registered by bench/run.py)."""
    hostile = raw["hostile_requests"]
    fragment = {
        "store": raw.get("store"),
        "duration_s": raw.get("duration_s"),
        "rounds": raw.get("rounds"),
        "read_connections": raw.get("read_connections"),
        "quiet": raw["quiet"],
        "hostile": raw["hostile"],
        "p99_ratio": raw["p99_ratio"],
        "p50_ratio": raw.get("p50_ratio"),
        "read_timeouts": raw.get("read_timeouts"),
        "peak_rss_mb": raw["peak_rss_mb"],
        "quiet_peak_rss_mb": raw.get("quiet_peak_rss_mb"),
        "hwm_rss_mb": raw.get("hwm_rss_mb"),
        "hostile_sent": hostile["sent"],
        "hostile_by_status": hostile["by_status"],
        "hostile_all_refused_or_closed": hostile["all_refused_or_closed"],
        "slowloris": raw.get("slowloris"),
    }
    return {"hostile": fragment}


# The run


async def measure(
    port: int, keys: Keys, script: Path, args: argparse.Namespace, sampler: RssSampler
) -> list[dict[str, Any]]:
    from bench.read_path import run_wrk

    await asyncio.to_thread(run_wrk, port, script, args.read_connections, WARM_UP_SECONDS)
    # Each hostile case once, so the write routes' first-use costs land in no phase.
    warm_up: dict[str, Any] = {}
    for case in HOSTILE_CASES:
        started = time.perf_counter()
        outcome, json_body = await send_case(port, case.build(keys))
        warm_up[case.name] = {
            "status": outcome,
            "json": json_body,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
    phases: list[dict[str, Any]] = [{"kind": "warm_up", "hostile_cases": warm_up}]
    for round_number in range(1, args.rounds + 1):
        for hostile in (False, True):  # quiet first: what the hostile run is measured against
            result = await phase(hostile, port, keys, script, args, sampler)
            result["round"] = round_number
            read = result["read"]
            print(
                f"round {round_number} {result['kind']:7} {read['rps']:>8,.0f} req/s  "
                f"p50 {read['p50_ms']} ms  p99 {read['p99_ms']} ms  "
                f"peak RSS {result['peak_rss_mb']} MB",
                file=sys.stderr,
            )
            if hostile:
                requests = result["hostile_requests"]
                print(
                    f"  hostile: {requests['sent']} sent, {requests['by_status']}", file=sys.stderr
                )
                print(f"  slowloris: {result['slowloris']}", file=sys.stderr)
            phases.append(result)
    return phases


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_const", dest="preset", const="quick")
    preset.add_argument("--full", action="store_const", dest="preset", const="full")
    parser.add_argument("--customers", type=int, help="sample customers in the store")
    parser.add_argument("--duration", type=int, help="seconds per phase (quiet and hostile)")
    parser.add_argument("--rounds", type=int, help="quiet + hostile pairs")
    parser.add_argument("--read-connections", type=int, help="wrk connections for reads")
    parser.add_argument("--slowloris", type=int, help="connections trickling headers")
    parser.add_argument(
        "--header-timeout",
        type=float,
        help="HEADER_TIMEOUT_SECONDS for the server (default 4; 0: the server's own default)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "hostile.json")
    args = parser.parse_args(argv)
    for name, value in {**DEFAULTS, **PRESETS.get(args.preset or "quick", {})}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.duration < 1 or args.rounds < 1 or args.customers < 1 or args.read_connections < 1:
        parser.error("--duration, --rounds, --customers and --read-connections must be >= 1")
    if not 0 <= args.slowloris <= 500:
        parser.error("--slowloris must be within 0..500")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from bench.read_path import free_port, wrk_script

    args = parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-hostile-") as temp,
        fresh_redis_prefix("hostile") as prefix,
        fresh_postgres_database("hostile") as store_url,
    ):
        directory = Path(temp)
        keys = prepare(store_url, args.customers)
        script = wrk_script(directory, args.customers, keys.staff)
        port = free_port()
        env = {
            **os.environ,
            "EVENT_STORE_URL": store_url,
            "REDIS_URL": redis_url(),
            "REDIS_PREFIX": prefix,
            "DATA_DIR": str(directory / "data"),
            "HOST": HOST,
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        if args.header_timeout:
            env["HEADER_TIMEOUT_SECONDS"] = str(args.header_timeout)
        log = directory / "serve.log"
        probe = f"/api/customers/{args.customers}"  # readable once the projector caught up
        with serving(env, port, probe, keys.staff, log) as pid, RssSampler(pid) as sampler:
            start_rss = memory_kib(pid)
            phases = asyncio.run(measure(port, keys, script, args, sampler))
            end_memory = memory_kib(pid)
        server_log = log_summary(log)

    quiet = [entry for entry in phases if entry["kind"] == "quiet"]
    hostile = [entry for entry in phases if entry["kind"] == "hostile"]

    def side(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "rps": median_of(runs, "rps"),
            "p50_ms": median_of(runs, "p50_ms"),
            "p90_ms": median_of(runs, "p90_ms"),
            "p99_ms": median_of(runs, "p99_ms"),
            "non_2xx": sum(run["read"]["non_2xx"] for run in runs),
            "timeouts": sum(run["read"].get("timeouts") or 0 for run in runs),
            "server_cpu_s": median_phase(runs, "server_cpu_s"),
            "client_cpu_s": median_phase(runs, "client_cpu_s"),
        }

    quiet_side, hostile_side = side(quiet), side(hostile)
    peaks = [entry["peak_rss_mb"] for entry in hostile if entry["peak_rss_mb"] is not None]
    quiet_peaks = [entry["peak_rss_mb"] for entry in quiet if entry["peak_rss_mb"] is not None]
    hostile_requests = merge_hostile(hostile, phases[0]["hostile_cases"])
    result = {
        "store": "PostgreSQL",
        "server": "customers serve (one uvicorn worker, projector thread, Redis read model)",
        "customers": args.customers,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "read_connections": args.read_connections,
        "read_client": "wrk -t1, random customer ids, staff key (bench.read_path)",
        "hostile_client": "one asyncio client, one request at a time, a new connection each",
        "header_timeout_s": args.header_timeout or "server default",
        "answer_timeout_s": ANSWER_TIMEOUT_SECONDS,
        "quiet": quiet_side,
        "hostile": hostile_side,
        "p99_ratio": ratio(hostile_side["p99_ms"], quiet_side["p99_ms"]),
        "p50_ratio": ratio(hostile_side["p50_ms"], quiet_side["p50_ms"]),
        "rps_ratio": ratio(hostile_side["rps"], quiet_side["rps"]),
        "read_timeouts": {"quiet": quiet_side["timeouts"], "hostile": hostile_side["timeouts"]},
        "peak_rss_mb": max(peaks) if peaks else None,
        "quiet_peak_rss_mb": max(quiet_peaks) if quiet_peaks else None,
        "start_rss_mb": round(start_rss.get("VmRSS", 0) / 1024, 1) or None,
        "hwm_rss_mb": round(end_memory.get("VmHWM", 0) / 1024, 1) or None,
        "rss_interval_ms": int(RSS_INTERVAL_SECONDS * 1000),
        "rss_samples": len(sampler.samples),
        "hostile_requests": hostile_requests,
        "hostile_cases": [case.name for case in HOSTILE_CASES],
        "slowloris": [entry["slowloris"] for entry in hostile],
        "phases": phases,
        "server_log": server_log,
        "load_average": os.getloadavg(),
    }
    path = write_json(args.out, result)
    print(f"wrote {path}", file=sys.stderr)
    for name, values in (("quiet", quiet_side), ("hostile", hostile_side)):
        print(
            f"{name:7} {values['rps'] or 0:>9,.0f} req/s  p50 {values['p50_ms']} ms  "
            f"p99 {values['p99_ms']} ms  non-2xx {values['non_2xx']}  "
            f"timeouts {values['timeouts']}"
        )
    print(f"p99 hostile/quiet: {result['p99_ratio']}x (target <= 1.5)")
    print(
        f"peak RSS while hostile: {result['peak_rss_mb']} MB (target < 200; HWM "
        f"{result['hwm_rss_mb']} MB)"
    )
    print(
        f"hostile requests: {hostile_requests['sent']} sent, {hostile_requests['by_status']}, "
        f"all refused 4xx JSON or closed: {hostile_requests['all_refused_or_closed']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
