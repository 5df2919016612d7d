"""Write throughput: orders/s over HTTP (one uvicorn worker, PostgreSQL) beside Application.save.

Run: python -m bench.write_throughput [--duration 10] [--connections 64] [--out PATH]

1. A fresh PostgreSQL database gets a producer key and CUSTOMERS sample customers.
2. `customers write-api` (one uvicorn worker) serves it on a free loopback port; wrk (or,
   without it, a raw asyncio HTTP/1.1 client) POSTs /api/orders over keep-alive
   connections for a fixed time, after a warm-up, once per connection count. Only 201
   responses count; anything else is reported, with the server's CPU time per order.
3. In the same run and database, the library's own in-process Application.save rate is
   measured for the same events (one Order.Placed per save), from one thread and from as
   many threads as the server's pool; and, for the ceiling a group commit can approach,
   64 orders per save. The headline ratio compares HTTP with one order per save.
Results go to bench/results/write.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import Application

from bench.common import RESULTS_DIR, cpu_seconds, fresh_postgres_database, write_json
from bench.common_data import load_sample
from bench.common_machine import describe_machine
from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.domain.order import Order

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = 1000
WARM_UP_SECONDS = 2.0
BATCHED_SAVE = 64  # orders per Application.save call: what a group commit does
SERVICE_THREADS = 256  # as many as the order fast path's threads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def prepare(store_url: str) -> tuple[str, int]:
    """A producer key and CUSTOMERS sample customers; returns the key and their orders."""
    service = CustomerService(event_store_env(store_url))
    try:
        key = service.issue_api_key("bench-producer", "producer").key
        return key, load_sample(service, CUSTOMERS).orders
    finally:
        service.close()


def start_server(store_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EVENT_STORE_URL": store_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [sys.executable, "-c", "from runtime.cli import main; main()", "write-api"],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"write-api exited with code {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.terminate()
    raise SystemExit("write-api did not start listening within 30 s")


class Load:
    """Counts of one HTTP load run."""

    def __init__(self) -> None:
        self.created = 0
        self.other_statuses: dict[int, int] = {}
        self.latencies_ms: list[float] = []
        self.measuring = False


async def one_connection(
    port: int, key: str, first_customer: int, stop_at: float, load: Load
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    customer_id = first_customer
    try:
        while time.monotonic() < stop_at:
            body = b'{"customer_id":%d,"amount":"12.34"}' % customer_id
            customer_id = customer_id % CUSTOMERS + 1
            request = (
                b"POST /api/orders HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Authorization: Token " + key.encode() + b"\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            ) + body
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not load.measuring:
                continue
            if status == 201:
                load.created += 1
                load.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                load.other_statuses[status] = load.other_statuses.get(status, 0) + 1
    finally:
        writer.close()


async def http_load(
    port: int, key: str, connections: int, duration: float, server_pid: int
) -> dict[str, Any]:
    load = Load()
    stop_at = time.monotonic() + WARM_UP_SECONDS + duration
    server_cpu: list[float | None] = []

    async def measure() -> float:
        await asyncio.sleep(WARM_UP_SECONDS)
        load.measuring = True
        server_cpu.append(cpu_seconds(server_pid))
        started = time.monotonic()
        await asyncio.sleep(duration)
        load.measuring = False
        server_cpu.append(cpu_seconds(server_pid))
        return time.monotonic() - started

    clock = asyncio.create_task(measure())
    await asyncio.gather(
        *(
            one_connection(port, key, 1 + i * CUSTOMERS // connections, stop_at, load)
            for i in range(connections)
        )
    )
    elapsed = await clock
    latencies = sorted(load.latencies_ms)

    def quantile(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))], 2) if latencies else None

    cpu_ms_per_order = None
    if None not in server_cpu and load.created:
        cpu_ms_per_order = round((server_cpu[1] - server_cpu[0]) * 1000 / load.created, 3)  # type: ignore[operator]
    return {
        "server_cpu_ms_per_order": cpu_ms_per_order,
        "orders": load.created,
        "seconds": round(elapsed, 3),
        "orders_per_s": round(load.created / elapsed, 1),
        "other_statuses": load.other_statuses,
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "connections": connections,
    }


WRK_SCRIPT = """
local headers = {{ ["Authorization"] = "Token {key}", ["Content-Type"] = "application/json" }}
local customer = 0
request = function()
  customer = customer % {customers} + 1
  local body = '{{"customer_id":' .. customer .. ',"amount":"12.34"}}'
  return wrk.format("POST", "/api/orders", headers, body)
end
"""
_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str | None) -> float | None:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text or "")
    return round(float(match[1]) * _WRK_UNITS[match[2]], 2) if match else None


def wrk_load(
    port: int, key: str, connections: int, duration: float, server_pid: int
) -> dict[str, Any]:
    """The same load from wrk (C, one thread), so the client takes little of the CPU."""
    with tempfile.TemporaryDirectory() as directory:
        script = Path(directory) / "orders.lua"
        script.write_text(WRK_SCRIPT.format(key=key, customers=CUSTOMERS))

        def run(seconds: float) -> str:
            command = [
                "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                "--timeout", "10s",
                "-s", str(script), f"http://127.0.0.1:{port}",
            ]  # fmt: skip
            return subprocess.run(command, capture_output=True, text=True, check=True).stdout

        run(WARM_UP_SECONDS)
        cpu_before = cpu_seconds(server_pid)
        output = run(duration)
        cpu_after = cpu_seconds(server_pid)
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)[1])  # type: ignore[index]
    elapsed_match = re.search(r"requests in ([\d.]+)(us|ms|s)", output)
    elapsed = (
        (_wrk_ms(elapsed_match[1] + elapsed_match[2]) or 0) / 1000 if elapsed_match else duration
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    failed = int(non_2xx[1]) if non_2xx else 0
    created = requests - failed
    percentiles = {
        int(match[1]): match[2]
        for match in re.finditer(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE)
    }
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None and created:
        cpu_ms = round((cpu_after - cpu_before) * 1000 / created, 3)
    return {
        "client": "wrk",
        "server_cpu_ms_per_order": cpu_ms,
        "orders": created,
        "seconds": round(elapsed, 3),
        "orders_per_s": round(created / elapsed, 1),
        "other_statuses": {"non_2xx": failed} if failed else {},
        "p50_ms": _wrk_ms(percentiles.get(50)),
        "p99_ms": _wrk_ms(percentiles.get(99)),
        "connections": connections,
        "socket_errors": socket_errors[1] if socket_errors else None,
    }


class Baseline(Application[UUID]):
    """The library's Application, nothing of ours but the event class."""

    name = "baseline"


def save_rate(store_url: str, threads: int, duration: float, per_call: int = 1) -> dict[str, Any]:
    """Application.save of `per_call` new orders per call from `threads` threads."""
    app = Baseline(event_store_env(store_url))
    saved = [0] * threads
    when = datetime.now(UTC)
    stop = threading.Event()

    def run(index: int) -> None:
        customer_id = 1 + index
        while not stop.is_set():
            orders = [
                Order.place(uuid.uuid4().hex, customer_id, Decimal("12.34"), when)
                for _ in range(per_call)
            ]
            app.save(*orders)
            saved[index] += per_call

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    time.sleep(duration)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    app.close()
    total = sum(saved)
    return {"saves": total, "seconds": round(elapsed, 3), "saves_per_s": round(total / elapsed, 1)}


def service_rate(store_url: str, threads: int, duration: float) -> dict[str, Any]:
    """CustomerService.place_order from `threads` threads in process: the path without HTTP."""
    service = CustomerService(event_store_env(store_url))
    placed = [0] * threads
    stop = threading.Event()

    def run(index: int) -> None:
        customer_id = index % CUSTOMERS
        while not stop.is_set():
            customer_id = customer_id % CUSTOMERS + 1
            service.place_order(customer_id, Decimal("12.34"))
            placed[index] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    time.sleep(duration)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    service.close()
    total = sum(placed)
    return {
        "orders": total,
        "threads": threads,
        "seconds": round(elapsed, 3),
        "orders_per_s": round(total / elapsed, 1),
    }


def stored_orders(store_url: str) -> int:
    service = CustomerService(event_store_env(store_url))
    try:
        return sum(len(page) for page in iter_pages(service, Order.Placed.TOPIC))
    finally:
        service.close()


def iter_pages(service: CustomerService, topic: str) -> Any:
    start = 1
    while True:
        page = service.recorder.select_notifications(start, 10_000, topics=[topic])
        if not page:
            return
        yield page
        start = page[-1].id + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument(
        "--connections",
        default="64,256",
        help="concurrent HTTP clients; a comma-separated list measures each in turn",
    )
    parser.add_argument("--pool-size", type=int, default=10, help="server's PostgreSQL pool")
    parser.add_argument(
        "--client",
        choices=["wrk", "asyncio"],
        default="wrk" if shutil.which("wrk") else "asyncio",
        help="load generator: wrk (default when installed) or the built-in asyncio client",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "write.json")
    args = parser.parse_args(argv)

    with fresh_postgres_database("write") as database_url:
        store_url = f"{database_url}?pool_size={args.pool_size}"
        key, sample_orders = prepare(store_url)
        port = free_port()
        server = start_server(store_url, port)
        sweep = []
        try:
            for connections in (int(text) for text in args.connections.split(",")):
                if args.client == "wrk":
                    run = wrk_load(port, key, connections, args.duration, server.pid)
                else:
                    run = asyncio.run(http_load(port, key, connections, args.duration, server.pid))
                sweep.append(run)
        finally:
            server.terminate()
            server.wait(timeout=30)
        http = max(sweep, key=lambda run: float(run["orders_per_s"]))
        recorded = stored_orders(store_url) - sample_orders
        single = save_rate(store_url, 1, args.duration / 2)
        pooled = save_rate(store_url, args.pool_size, args.duration / 2)
        batched = save_rate(store_url, 1, args.duration / 2, per_call=BATCHED_SAVE)
        in_process = service_rate(store_url, SERVICE_THREADS, args.duration / 2)

    best_save = max(single["saves_per_s"], pooled["saves_per_s"])
    results = {
        "http_orders_per_s": http["orders_per_s"],
        "in_process_saves_per_s": best_save,
        "http_vs_save_ratio": round(http["orders_per_s"] / best_save, 3),
        "store": f"PostgreSQL (fresh database, one uvicorn worker, pool_size {args.pool_size})",
        "http": http,
        "http_sweep": sweep,
        "http_orders_in_store": recorded,
        "save_single_thread": single,
        f"save_{args.pool_size}_threads": pooled,
        f"save_{BATCHED_SAVE}_orders_per_call": batched,
        "service_place_order_in_process": in_process,
        "machine": describe_machine(),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "command": "python -m bench.write_throughput " + " ".join(argv or sys.argv[1:]),
    }
    write_json(args.out, results)
    print(orjson.dumps({k: results[k] for k in list(results)[:4]}).decode())
    print(
        f"HTTP: {http['orders_per_s']:,.0f} orders/s ({http['connections']} connections, "
        f"p50 {http['p50_ms']} ms, p99 {http['p99_ms']} ms, other statuses "
        f"{http['other_statuses'] or 'none'}; server CPU {http['server_cpu_ms_per_order']} "
        f"ms/order); Application.save: {single['saves_per_s']:,.0f}/s "
        f"on 1 thread, {pooled['saves_per_s']:,.0f}/s on {args.pool_size}, "
        f"{batched['saves_per_s']:,.0f}/s at {BATCHED_SAVE} per call; in-process "
        f"place_order {in_process['orders_per_s']:,.0f}/s; "
        f"ratio HTTP/save {results['http_vs_save_ratio']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
