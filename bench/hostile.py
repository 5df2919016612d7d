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
   read benchmark's script and parser, bench.common_http) requests random customers with
   the staff key. In the hostile phase, at the same time, one client sends the cases of
   HOSTILE_CASES (bench.hostile_cases) one after another in a loop, each on a new
   connection (1e999999999 and 1e300000 amounts, a 5,000-deep array, a 50 MB
   Content-Length with a few bytes sent, a 1 MiB chunked body, NaN / Infinity, lone
   surrogates, repeated Authorization headers), and SLOWLORIS connections trickle the
   headers of a request they never finish, opening a new connection whenever the server
   closes one.
4. Every hostile request must be answered 4xx with a JSON body, or closed by the server,
   within ANSWER_TIMEOUT_SECONDS; anything else is counted as a failure by kind. The
   server's VmRSS is sampled every 100 ms throughout.

Loops are bounded in count and time, traffic only goes to 127.0.0.1, and the database and
key prefix are removed afterwards. Results go to bench/results/hostile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    RssSampler,
    fresh_postgres_database,
    fresh_redis_prefix,
    memory_kib,
    ratio,
    redis_url,
    write_json,
)
from bench.common_http import (
    HOST,
    ROOT,
    customers_command,
    free_port,
    read_script,
    serving,
)
from bench.hostile_cases import ANSWER_TIMEOUT_SECONDS, HOSTILE_CASES, Keys
from bench.hostile_outcomes import merge_hostile, read_side
from bench.hostile_phases import measure

RSS_INTERVAL_SECONDS = 0.1

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


# The run


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
    args = parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-hostile-") as temp,
        fresh_redis_prefix("hostile") as prefix,
        fresh_postgres_database("hostile") as store_url,
    ):
        directory = Path(temp)
        keys = prepare(store_url, args.customers)
        script = read_script(directory, args.customers, keys.staff)
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
        staff = {"Authorization": f"Token {keys.staff}"}
        command = customers_command("serve")
        with (
            serving(command, env, port, probe, log, staff) as pid,
            RssSampler(pid, RSS_INTERVAL_SECONDS) as sampler,
        ):
            start_rss = memory_kib(pid)
            phases = asyncio.run(measure(port, keys, script, args, sampler))
            end_memory = memory_kib(pid)
        server_log = log_summary(log)

    quiet = [entry for entry in phases if entry["kind"] == "quiet"]
    hostile = [entry for entry in phases if entry["kind"] == "hostile"]

    quiet_side, hostile_side = read_side(quiet), read_side(hostile)
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
        "read_client": "wrk -t1, random customer ids, staff key (bench.common_http)",
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
