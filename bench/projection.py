"""Projection throughput, side by side on the same PostgreSQL events (a benchmark, not a test).

    python -m bench.projection --sizes 100000,1000000 [--out bench/results/projection.json]

For each size a fresh PostgreSQL database is filled with the application's own events
(bench.common_data's sample customers, until the size is reached), then three readers of the same
notification log run one after another, each in its own process on its own key prefix:

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

import orjson
import redis
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import InfrastructureFactory, Tracking, TrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner

from bench.common import (
    RESULTS_DIR,
    RssSampler,
    fresh_postgres_database,
    fresh_redis_prefix,
    memory_kib,
    redis_url,
    unreachable_servers,
    write_json,
)
from bench.common_data import DESCRIPTION, load_sample
from contract.customer_document import PROFILE_FIELDS
from projections.customer_view import CustomerRecord, apply
from projections.event_decoding import (
    CANCELLED,
    DEACTIVATED,
    LOGGED_IN,
    PLACED,
    PROFILE_INDEX,
    PROFILE_UPDATED,
    REACTIVATED,
    REFUNDED,
    REGISTERED,
    CustomerChange,
    spent_by_cancel,
    spent_by_refund,
)
from projections.notification_log import page_reader
from projections.projector import Projector
from projections.read_model import D_PROFILE, Keys
from projections.stored_fields import canonical_time
from projections.tracking import RedisTrackingRecorder
from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.domain.customer import Customer
from write_side.domain.money import to_minor_units
from write_side.domain.order import Order

PAGE = 5000
WORKERS = ("raw", "raw_lean", "ours", "baseline")
GOALS = {"ours_eps": 40_000, "vs_baseline": 10.0, "vs_raw": 0.8, "rebuild_1m_seconds": 30.0}


# The baseline: what a user of the library's ProjectionRunner would write.


class BaselineView(RedisTrackingRecorder):
    """The same Redis record, written one event at a time in a MULTI/EXEC with tracking."""

    def __init__(self) -> None:
        client = redis.Redis.from_url(os.environ["BENCH_VIEW_REDIS_URL"])
        super().__init__(client, Keys(os.environ["BENCH_VIEW_PREFIX"]), generation=1)

    def apply_change(self, change: CustomerChange | None, tracking: Tracking) -> None:
        pipe = self.client.pipeline(transaction=True)
        if change is not None:
            key = self.keys.customer(1, change.customer_id)
            current = _record(change.customer_id, self.client.hget(key, "d"))
            updated = apply(current, change)
            if updated is not current:
                pipe.hset(key, "d", updated.fields()[0])
                pipe.hincrby(key, "s", change.spent)
                pipe.hincrby(key, "o", change.orders)
        pipe.hset(self.key, tracking.application_name, str(tracking.notification_id))
        pipe.execute()


def _record(customer_id: int, doc: bytes | str | None) -> CustomerRecord:
    if doc is None:
        return CustomerRecord(customer_id)
    values = orjson.loads(doc)
    return CustomerRecord(
        customer_id,
        position=int(values[0]),
        active=bool(values[1]),
        date_joined=values[2],
        last_login=values[3],
        profile=tuple(values[D_PROFILE : D_PROFILE + len(PROFILE_FIELDS)]),
    )


class BaselineProjection(Projection[BaselineView]):
    name = "baseline"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.apply_change(change_of(domain_event, tracking.notification_id), tracking)


def change_of(event: DomainEventProtocol[Any], position: int) -> CustomerChange | None:
    """The customer change a domain event object makes (the baseline gets objects)."""
    if isinstance(event, Customer.Registered):
        profile = tuple(event.profile.get(name) for name in PROFILE_FIELDS)
        joined = canonical_time(event.timestamp)
        return CustomerChange(position, event.customer_id, REGISTERED, value=(joined, profile))
    if isinstance(event, Customer.ProfileUpdated):
        updates = tuple((PROFILE_INDEX[k], v) for k, v in event.changes.items())
        return CustomerChange(position, event.customer_id, PROFILE_UPDATED, value=updates)
    if isinstance(event, Customer.LoggedIn):
        at = canonical_time(event.at)
        return CustomerChange(position, event.customer_id, LOGGED_IN, value=at)
    if isinstance(event, Customer.Deactivated):
        return CustomerChange(position, event.customer_id, DEACTIVATED)
    if isinstance(event, Customer.Reactivated):
        return CustomerChange(position, event.customer_id, REACTIVATED)
    if isinstance(event, Order.Placed):
        return CustomerChange(position, event.customer_id, PLACED, to_minor_units(event.amount), 1)
    if isinstance(event, Order.Cancelled):
        spent = spent_by_cancel(to_minor_units(event.amount), to_minor_units(event.refunded))
        return CustomerChange(position, event.customer_id, CANCELLED, spent, -1)
    if isinstance(event, Order.Refunded):
        spent = spent_by_refund(to_minor_units(event.amount))
        return CustomerChange(position, event.customer_id, REFUNDED, spent, 0)
    return None


class RedisViewFactory(InfrastructureFactory[TrackingRecorder]):
    """A persistence module for the view alone, so ProjectionRunner can build a Redis view."""

    def aggregate_recorder(self, purpose: str = "events") -> Any:
        raise NotImplementedError

    def application_recorder(self) -> Any:
        raise NotImplementedError

    def tracking_recorder(self, tracking_recorder_class: Any = None) -> TrackingRecorder:
        view_class = tracking_recorder_class or BaselineView
        view: TrackingRecorder = view_class()
        return view

    def process_recorder(self) -> Any:
        raise NotImplementedError


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
        runner_env = {**env, "BASELINE_PERSISTENCE_MODULE": "bench.projection:RedisViewFactory"}
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


def table(rows: list[dict[str, Any]]) -> str:
    header = (
        f"{'events':>10} {'baseline ev/s':>14} {'raw read ev/s':>14} {'lean read':>10} "
        f"{'ours ev/s':>10} "
        f"{'x baseline':>10} {'x raw':>6} {'ours s':>7} {'peak RSS MB':>11} "
        f"{'RSS start/max/end':>18}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        rss = r["rss_mb"]
        lines.append(
            f"{r['events']:>10,} {r['baseline_eps']:>14,} {r['raw_eps']:>14,} "
            f"{r['raw_lean_eps']:>10,} "
            f"{r['ours_eps']:>10,} {r['vs_baseline']:>10} {r['vs_raw']:>6} "
            f"{r['ours_seconds']:>7} {r['peak_rss_mb']:>11} "
            f"{rss['start']:>6}/{rss['max']}/{rss['end']:<6}"
        )
    return "\n".join(lines)


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
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        print("error: --sizes must be comma-separated integers", file=sys.stderr)
        return 2
    problems = unreachable_servers()
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()
    rows = []
    for size in sizes:
        rows.append(measure(size, args.baseline_max))
        print(f"measured {rows[-1]['events']:,} events", file=sys.stderr, flush=True)
    print(table(rows))
    write_json(
        args.out,
        {
            "store": "PostgreSQL",
            "page_size": PAGE,
            "data": DESCRIPTION,
            "goals": GOALS,
            "sizes": rows,
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_1m_before_after": [
                    round(load_before[0], 2),
                    round(os.getloadavg()[0], 2),
                ],
            },
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
