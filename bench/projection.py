"""Projection throughput, side by side on the same PostgreSQL events (a benchmark, not a test).

    python -m bench.projection --sizes 100000,1000000 [--out bench/results/projection.json]

For each size a fresh PostgreSQL database is filled with the application's own events
(bench.common_data's sample customers, until the size is reached), then four readers of
the same notification log run one after another, each in its own process and key prefix:

  baseline  the library's ProjectionRunner with a per-event Projection, writing the same
            customer record to Redis: read the record, then one MULTI/EXEC per event with
            the record, the totals and the tracking position (what a library user writes);
  raw       the notification log read in pages of 5,000 with the library's
            select_notifications, and nothing else: the ceiling the issue names;
  raw_lean  the same pages read as the projector reads them (three columns, tuples);
  ours      projections.Projector.catch_up(): pages, one guarded script per customer per
            page, pipelined, then the position.

The baseline is stopped after --baseline-max events (its rate is flat; a full million
would take many minutes). Peak RSS is the projector process's VmHWM; RSS is also sampled
while it runs, to show it stays flat. Results: a table on stdout and JSON in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from eventsourcing.projection import ProjectionRunner

from bench.common import (
    RESULTS_DIR,
    RssSampler,
    fresh_postgres_database,
    fresh_redis_prefix,
    memory_kib,
    redis_url,
    write_json,
)
from bench.common_data import DESCRIPTION, load_sample
from bench.projection_baseline import BaselineProjection, BaselineView
from projections.notification_log import page_reader
from projections.projector import Projector
from projections.read_model import Keys
from runtime.settings import event_store_env
from write_side.application import CustomerService

PAGE = 5000
WORKERS = ("raw", "raw_lean", "ours", "baseline")


# Workers: each measurement in its own process.


def worker(kind: str, store_url: str, prefix: str, limit: int) -> dict[str, Any]:
    env = event_store_env(store_url)
    client = redis.Redis.from_url(redis_url(), socket_timeout=120)
    if kind == "raw":
        service = CustomerService(env)
        started = time.perf_counter()
        position = events = 0
        while True:
            page = service.recorder.select_notifications(position + 1, PAGE)
            events += len(page)
            if len(page) < PAGE:
                break
            position = page[-1].id
        seconds = time.perf_counter() - started
        service.close()
        return {"events": events, "seconds": seconds}
    if kind == "raw_lean":
        service = CustomerService(env)
        read = page_reader(service.recorder)
        started = time.perf_counter()
        position = events = 0
        while True:
            rows = read(position, PAGE)
            events += len(rows)
            if len(rows) < PAGE:
                break
            position = rows[-1][0]
        seconds = time.perf_counter() - started
        service.close()
        return {"events": events, "seconds": seconds}
    if kind == "ours":
        service = CustomerService(env)
        projector = Projector(service.recorder, client, Keys(prefix), page_size=PAGE)
        with RssSampler(os.getpid(), 0.2) as rss:
            started = time.perf_counter()
            position = projector.catch_up()
            seconds = time.perf_counter() - started
        head = service.recorder.max_notification_id()
        assert position == head, f"projected to {position}, the store ends at {head}"
        service.close()
        mb = [round(kib / 1024, 1) for _, kib in rss.samples]
        return {
            "events": position,
            "seconds": seconds,
            "peak_rss_mb": round(memory_kib(os.getpid())["VmHWM"] / 1024, 1),
            "rss_mb": {"start": mb[0], "max": max(mb), "end": mb[-1], "samples": len(mb)},
        }
    if kind == "baseline":
        os.environ["BENCH_VIEW_REDIS_URL"] = redis_url()
        os.environ["BENCH_VIEW_PREFIX"] = prefix
        runner_env = {
            **env,
            "BASELINE_PERSISTENCE_MODULE": "bench.projection_baseline:RedisViewFactory",
        }
        started = time.perf_counter()
        runner: ProjectionRunner[CustomerService, BaselineView] = ProjectionRunner(
            application_class=CustomerService,
            projection_class=BaselineProjection,
            view_class=BaselineView,
            env=runner_env,
        )
        with runner:
            head = runner.app.recorder.max_notification_id() or 0
            target = min(head, limit)
            runner.wait(target, timeout=3600)
            seconds = time.perf_counter() - started
        return {"events": target, "seconds": seconds}
    raise ValueError(kind)


def run_worker(kind: str, store_url: str, limit: int) -> dict[str, Any]:
    with fresh_redis_prefix(f"proj_{kind}") as prefix:
        command = [sys.executable, "-m", "bench.projection", "--worker", kind]
        command += ["--store-url", store_url, "--prefix", prefix, "--limit", str(limit)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{kind} worker failed: {completed.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    result["eps"] = round(result["events"] / result["seconds"]) if result["seconds"] else None
    return result


# The comparison.


def measure(size: int, baseline_max: int) -> dict[str, Any]:
    with fresh_postgres_database("projection") as url:
        service = CustomerService(event_store_env(url))
        started = time.perf_counter()
        sample = load_sample(service, events=size)
        written, customers = sample.events, sample.customers
        fill_seconds = time.perf_counter() - started
        service.close()
        raw = run_worker("raw", url, written)
        raw_lean = run_worker("raw_lean", url, written)
        ours = run_worker("ours", url, written)
        baseline = run_worker("baseline", url, baseline_max)
    return {
        "events": written,
        "customers": customers,
        "fill_seconds": round(fill_seconds, 1),
        "ours_eps": ours["eps"],
        "ours_seconds": round(ours["seconds"], 2),
        "raw_eps": raw["eps"],
        "raw_lean_eps": raw_lean["eps"],
        "baseline_eps": baseline["eps"],
        "baseline_events": baseline["events"],
        "vs_baseline": round(ours["eps"] / baseline["eps"], 1) if baseline["eps"] else None,
        "vs_raw": round(ours["eps"] / raw["eps"], 2) if raw["eps"] else None,
        "vs_raw_lean": round(ours["eps"] / raw_lean["eps"], 2) if raw_lean["eps"] else None,
        "peak_rss_mb": ours["peak_rss_mb"],
        "rss_mb": ours["rss_mb"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated event counts")
    parser.add_argument("--baseline-max", type=int, default=30_000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "projection.json")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    parser.add_argument("--store-url", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.store_url, args.prefix, args.limit)))
        return 0
    load_before = os.getloadavg()[0]
    rows = []
    for size in (int(size) for size in args.sizes.split(",")):
        row = measure(size, args.baseline_max)
        rows.append(row)
        print(
            f"{row['events']:,} events: ours {row['ours_eps']:,} events/s, runner "
            f"{row['baseline_eps']:,}, raw reads {row['raw_eps']:,}",
            flush=True,
        )
    write_json(
        args.out,
        {
            "store": "PostgreSQL",
            "page_size": PAGE,
            "data": DESCRIPTION,
            "sizes": rows,
            "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "method": (
                "Same events, fresh database per size; each reader in its own process on "
                "its own key prefix. baseline = eventsourcing ProjectionRunner + per-event "
                "Projection (HGET the record, then MULTI/EXEC record + totals + tracking), "
                f"stopped after {args.baseline_max:,} events; raw = select_notifications "
                f"in pages of {PAGE:,}; ours = Projector.catch_up()."
            ),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
