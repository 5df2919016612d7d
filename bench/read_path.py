"""Read path benchmark: our endpoint beside three baselines, with wrk, one uvicorn worker each.

    python -m bench.read_path --customers 100000 --duration 10 --connections 32

Data: N sample customers (bench.common_data: full profiles, logins, orders, some cancelled
or refunded) are loaded into a fresh SQLite event store and projected into a fresh Redis
prefix by the real projector; a fresh PostgreSQL database holds the same orders in a table
for baseline (c). Endpoints, each in its own process, one uvicorn worker with
uvloop and httptools:

    ours      `customers read-api` (the production command), staff key
    ours_via_fastapi  `customers read-api` with its ASGI fast path off (FastAPI routing), once
    bare      (a) FastAPI returning a constant dict
    hgetall   (b) FastAPI + redis.asyncio HGETALL returning the hash
    postgres  (c) FastAPI + PostgreSQL COUNT/SUM over the orders table

wrk requests random ids over all N customers. Every endpoint gets a warm-up run first;
the endpoints then take turns for --rounds rounds (each reports its median round), and
our endpoint is also swept over the connection counts given. Servers: BENCH_REDIS_URL and
BENCH_POSTGRES_URL (else the local defaults); everything created is removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from bench import read_baselines
from bench.common import (
    RESULTS_DIR,
    fresh_postgres_database,
    fresh_redis_prefix,
    redis_url,
    write_json,
)
from bench.common_data import DESCRIPTION, load_and_project, sample_plans
from bench.common_http import (
    ROOT,
    customers_command,
    free_port,
    read_script,
    run_wrk,
    serving,
)
from runtime.settings import event_store_env
from write_side.application import CustomerService

WARM_UP_SECONDS = 2


# Data


def prepare(count: int, directory: Path, prefix: str) -> tuple[str, str]:
    """A staff key and `count` customers, projected; returns (event store URL, the key)."""
    url = f"sqlite:///{directory / 'events.sqlite'}"
    service = CustomerService(event_store_env(url))
    try:
        key = service.issue_api_key("bench-staff", "staff").key  # projected with the sample
    finally:
        service.close()
    print(f"sample: {load_and_project(url, count, prefix)}", file=sys.stderr)
    return url, key


def fill_orders_table(database_url: str, count: int) -> None:
    """The sample customers' orders, as a relational schema would keep them."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (order_id bigserial PRIMARY KEY, customer_id bigint NOT NULL, "
            "amount numeric(15,2) NOT NULL, refunded numeric(15,2) NOT NULL DEFAULT 0, "
            "cancelled boolean NOT NULL DEFAULT false)"
        )
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY orders (customer_id, amount, refunded, cancelled) FROM STDIN"
            ) as copy,
        ):
            for plan in sample_plans(count):
                for order in plan.orders:
                    refunded = sum(order.refunds, Decimal(0))
                    copy.write_row((plan.customer_id, order.amount, refunded, order.cancelled))
        conn.execute("CREATE INDEX orders_by_customer ON orders (customer_id)")
        conn.execute("ANALYZE orders")


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (a whole run, so its latencies belong to it)."""
    ordered = sorted(runs, key=lambda run: run["rps"])
    return ordered[len(ordered) // 2]


def round_ratios(runs: dict[str, list[dict[str, Any]]], baseline: str) -> list[float]:
    return [
        round(ours["rps"] / other["rps"], 2)
        for ours, other in zip(runs["ours"], runs[baseline], strict=True)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", default="32", help="comma list; 32 is the headline")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds over all endpoints (default 3; 2 for runs under 5 s)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "read.json")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 3 if args.duration >= 5 else 2
    warm_up = WARM_UP_SECONDS if args.duration >= 5 else 1
    sweep = sorted({int(part) for part in args.connections.split(",")})
    headline = 32 if 32 in sweep else sweep[-1]

    with (
        tempfile.TemporaryDirectory(prefix="bench-read-") as temp,
        fresh_redis_prefix("read") as prefix,
        fresh_postgres_database("read") as database_url,
        contextlib.ExitStack() as servers,
    ):
        directory = Path(temp)
        store_url, key = prepare(args.customers, directory, prefix)
        fill_orders_table(database_url, args.customers)
        script = read_script(directory, args.customers, key)
        base_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_REDIS_URL": redis_url(),
            "BENCH_PREFIX": prefix,
            "BENCH_PG_URL": database_url,
        }
        ours_env = {
            **base_env,
            "EVENT_STORE_URL": store_url,
            "REDIS_URL": redis_url(),
            "REDIS_PREFIX": prefix,
            "LOG_LEVEL": "WARNING",
        }
        staff = {"Authorization": f"Token {key}"}

        probe = "/api/customers/1"

        def serve(name: str, command: list[str], env: dict[str, str], port: int) -> int:
            log = directory / f"{name}.log"
            return servers.enter_context(serving(command, env, port, probe, log, staff))

        ports = {name: free_port() for name in ("ours", *read_baselines.APPS)}
        serve(
            "ours",
            customers_command("read-api"),
            {**ours_env, "PORT": str(ports["ours"])},
            ports["ours"],
        )
        for name in read_baselines.APPS:
            serve(name, read_baselines.command(name, ports[name]), base_env, ports[name])
        for port in ports.values():
            run_wrk(port, script, headline, warm_up)
        # Rounds interleave the endpoints, so a change in the machine's load during the run
        # falls on all of them alike; each endpoint reports its median round.
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ports}
        for round_number in range(1, args.rounds + 1):
            for name, port in ports.items():
                result = run_wrk(port, script, headline, args.duration)
                print(f"round {round_number} {name:9} {result}", file=sys.stderr)
                runs[name].append(result)
        endpoints = {name: median_run(results) for name, results in runs.items()}
        # The same app without its fast path, once: what skipping the framework is worth.
        port = free_port()
        command = [sys.executable, "-m", "bench.read_baselines.ours_without_fast_path"]
        log = directory / "ours_via_fastapi.log"
        with serving(command, {**ours_env, "PORT": str(port)}, port, probe, log, staff):
            run_wrk(port, script, headline, warm_up)
            endpoints["ours_via_fastapi"] = run_wrk(port, script, headline, args.duration)
        ours_sweep = []
        for count in sweep:
            if count == headline:
                ours_sweep.append(endpoints["ours"])
                continue
            result = run_wrk(ports["ours"], script, count, args.duration)
            print(f"sweep ours c={count:<4} {result}", file=sys.stderr)
            ours_sweep.append(result)

    result = {
        "customers": args.customers,
        "data": DESCRIPTION,
        "duration_s": args.duration,
        "connections": headline,
        "rounds": args.rounds,
        "wrk_threads": 1,
        "endpoints": endpoints,
        "sweep": ours_sweep,
        "all_rounds": runs,
        # Each round's ratio compares runs made moments apart (the load drifts less).
        "round_ratios_vs_bare": round_ratios(runs, "bare"),
        "round_ratios_vs_postgres": round_ratios(runs, "postgres"),
        "load_average": os.getloadavg(),
    }
    write_json(args.out, result)
    for name, values in endpoints.items():
        print(f"{name:16} {values['rps']:>9,.0f} req/s  p50 {values['p50_ms']} ms  "
              f"p99 {values['p99_ms']} ms  non-2xx {values['non_2xx']}")  # fmt: skip
    print(f"ours vs bare per round: {result['round_ratios_vs_bare']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
