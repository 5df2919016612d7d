"""Write throughput: orders/s over HTTP (one uvicorn worker, PostgreSQL) beside Application.save.

    python -m bench.write_throughput [--duration 10] [--connections 64,256] [--out PATH]

1. A fresh PostgreSQL database gets a producer key and CUSTOMERS sample customers.
2. `customers write-api` (one uvicorn worker) serves it on a free loopback port; wrk POSTs
   /api/orders over keep-alive connections for a fixed time, after a warm-up, once per
   connection count. Only 201 responses count; anything else is reported, with the
   server's CPU time per order.
3. In the same run and database, the library's own in-process Application.save rate is
   measured for the same events (one Order.Placed per save), from one thread and from as
   many threads as the server's pool; and, for the ceiling a group commit can approach,
   64 orders per save. The headline ratio compares HTTP with one order per save.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from bench.common import RESULTS_DIR, cpu_seconds, fresh_postgres_database, write_json
from bench.common_data import load_sample
from bench.common_http import HOST, ROOT, customers_command, free_port, run_wrk, serving
from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.domain.order import Order

CUSTOMERS = 1000
WARM_UP_SECONDS = 2
BATCHED_SAVE = 64  # orders per Application.save call: what a group commit does
SERVICE_THREADS = 256  # as many as the order fast path's threads
WRK_SCRIPT = """
local headers = {{ ["Authorization"] = "Token {key}", ["Content-Type"] = "application/json" }}
local customer = 0
request = function()
  customer = customer % {customers} + 1
  local body = '{{"customer_id":' .. customer .. ',"amount":"12.34"}}'
  return wrk.format("POST", "/api/orders", headers, body)
end
"""


def prepare(store_url: str) -> tuple[str, int]:
    """A producer key and CUSTOMERS sample customers; returns the key and their orders."""
    service = CustomerService(event_store_env(store_url))
    try:
        key = service.issue_api_key("bench-producer", "producer").key
        return key, load_sample(service, CUSTOMERS).orders
    finally:
        service.close()


def http_orders(
    port: int, script: Path, connections: int, seconds: int, pid: int
) -> dict[str, Any]:
    """Orders over HTTP from wrk (C, one thread, so the client takes little of the CPU)."""
    run_wrk(port, script, connections, WARM_UP_SECONDS, timeout_s=10)
    cpu_before = cpu_seconds(pid)
    run = run_wrk(port, script, connections, seconds, timeout_s=10)
    cpu_after = cpu_seconds(pid)
    elapsed = run["seconds"] or seconds
    created = (run["requests"] or 0) - run["non_2xx"]
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None and created:
        cpu_ms = round((cpu_after - cpu_before) * 1000 / created, 3)
    return {
        "client": "wrk",
        "server_cpu_ms_per_order": cpu_ms,
        "orders": created,
        "seconds": elapsed,
        "orders_per_s": round(created / elapsed, 1),
        "other_statuses": {"non_2xx": run["non_2xx"]} if run["non_2xx"] else {},
        "p50_ms": run["p50_ms"],
        "p99_ms": run["p99_ms"],
        "connections": connections,
        "socket_errors": run["socket_errors"],
    }


def on_threads(threads: int, seconds: float, work: Callable[[int], int]) -> dict[str, Any]:
    """Call work(thread index) on `threads` threads for `seconds`; it returns orders done."""
    done = [0] * threads
    stop = threading.Event()

    def run(index: int) -> None:
        while not stop.is_set():
            done[index] += work(index)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    total = sum(done)
    return {"threads": threads, "orders": total, "seconds": round(elapsed, 3),
            "orders_per_s": round(total / elapsed, 1)}  # fmt: skip


class Baseline(Application[UUID]):
    """The library's Application, nothing of ours but the event class."""

    name = "baseline"


def save_rate(store_url: str, threads: int, seconds: float, per_call: int = 1) -> dict[str, Any]:
    """Application.save of `per_call` new orders per call from `threads` threads."""
    app = Baseline(event_store_env(store_url))
    when = datetime.now(UTC)

    def save(index: int) -> int:
        orders = [Order.place(uuid.uuid4().hex, 1 + index, Decimal("12.34"), when)
                  for _ in range(per_call)]  # fmt: skip
        app.save(*orders)
        return per_call

    try:
        return {"orders_per_call": per_call, **on_threads(threads, seconds, save)}
    finally:
        app.close()


def service_rate(store_url: str, threads: int, seconds: float) -> dict[str, Any]:
    """CustomerService.place_order from `threads` threads in process: the path without HTTP."""
    service = CustomerService(event_store_env(store_url))
    customer = list(range(threads))  # each thread's last customer

    def place(index: int) -> int:
        customer[index] = customer[index] % CUSTOMERS + 1
        service.place_order(customer[index], Decimal("12.34"))
        return 1

    try:
        return on_threads(threads, seconds, place)
    finally:
        service.close()


def stored_orders(store_url: str) -> int:
    service = CustomerService(event_store_env(store_url))
    count, start = 0, 1
    try:
        while page := service.recorder.select_notifications(
            start, 10_000, topics=[Order.Placed.TOPIC]
        ):
            count += len(page)
            start = page[-1].id + 1
    finally:
        service.close()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument(
        "--connections",
        default="64,256",
        help="concurrent HTTP clients; a comma-separated list measures each in turn",
    )
    parser.add_argument("--pool-size", type=int, default=10, help="server's PostgreSQL pool")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "write.json")
    args = parser.parse_args(argv)
    seconds = max(1, round(args.duration))

    with (
        fresh_postgres_database("write") as database_url,
        tempfile.TemporaryDirectory(prefix="bench-write-") as temp,
    ):
        store_url = f"{database_url}?pool_size={args.pool_size}"
        key, sample_orders = prepare(store_url)
        script = Path(temp) / "orders.lua"
        script.write_text(WRK_SCRIPT.format(key=key, customers=CUSTOMERS))
        port = free_port()
        env = {**os.environ, "EVENT_STORE_URL": store_url, "HOST": HOST, "PORT": str(port),
               "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}  # fmt: skip
        log = Path(temp) / "write-api.log"
        with serving(customers_command("write-api"), env, port, "/healthz", log) as pid:
            sweep = [
                http_orders(port, script, int(connections), seconds, pid)
                for connections in args.connections.split(",")
            ]
        http = max(sweep, key=lambda run: float(run["orders_per_s"]))
        recorded = stored_orders(store_url) - sample_orders
        single = save_rate(store_url, 1, args.duration / 2)
        pooled = save_rate(store_url, args.pool_size, args.duration / 2)
        batched = save_rate(store_url, 1, args.duration / 2, per_call=BATCHED_SAVE)
        in_process = service_rate(store_url, SERVICE_THREADS, args.duration / 2)

    best_save = max(single["orders_per_s"], pooled["orders_per_s"])
    results = {
        "http_orders_per_s": http["orders_per_s"],
        "in_process_saves_per_s": best_save,
        "http_vs_save_ratio": round(http["orders_per_s"] / best_save, 3),
        "store": f"PostgreSQL (fresh database, one uvicorn worker, pool_size {args.pool_size})",
        "http": http,
        "http_sweep": sweep,
        "http_orders_in_store": recorded,  # warm-ups included
        "save_single_thread": single,
        "save_pooled": pooled,
        "save_batched": batched,
        "service_place_order_in_process": in_process,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    write_json(args.out, results)
    print(
        f"HTTP: {http['orders_per_s']:,.0f} orders/s ({http['connections']} connections, "
        f"p50 {http['p50_ms']} ms, p99 {http['p99_ms']} ms, other statuses "
        f"{http['other_statuses'] or 'none'}; server CPU {http['server_cpu_ms_per_order']} "
        f"ms/order); Application.save: {single['orders_per_s']:,.0f}/s "
        f"on 1 thread, {pooled['orders_per_s']:,.0f}/s on {args.pool_size}, "
        f"{batched['orders_per_s']:,.0f}/s at {BATCHED_SAVE} per call; in-process "
        f"place_order {in_process['orders_per_s']:,.0f}/s; "
        f"ratio HTTP/save {results['http_vs_save_ratio']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
