"""Freshness: how long after a write commits it is visible in the Redis read model.

    python -m bench.freshness [--stores postgres,sqlite] [--rate 1000] [--seconds 20]

Producer processes (bench.freshness_processes) place orders through the write service
(CustomerService, the code behind POST /api/orders) on a fixed schedule. The commit time
of each order is taken when its command returns its position. A subscriber in this
process, which does nothing else, notes when the projector announces each position as
applied on its positions channel; it publishes only after the page's changes are in
Redis, so that is when a reader can see the order. Times are CLOCK_MONOTONIC, which every
process on the machine shares.

Deployments: on PostgreSQL the projector is `customers project` in its own process, woken
by the store's NOTIFY, and two producer processes share the load; on SQLite, which has no
cross-process notifications, one producer process also runs the projector and wakes it
after each append (Projector.notify). The first second of writes is a warm-up and not
counted.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    RESULTS_DIR,
    fresh_postgres_database,
    fresh_redis_prefix,
    latency_summary,
    redis_url,
    write_json,
)
from bench.common_data import load_sample
from bench.freshness_processes import (
    CUSTOMERS,
    DRAIN_SECONDS,
    Schedule,
    await_ready,
    collect,
    start_producer,
    start_projector,
    stop_process,
    wait_until,
)
from projections.customer_record import orders_field
from projections.read_model import Keys
from write_side.application import CustomerService

PRODUCER_PROCESSES = 2
WARM_UP_SECONDS = 1.0


def visible_latencies_ms(
    commits: Sequence[tuple[int, float]], announcements: Sequence[tuple[int, float]]
) -> tuple[list[float], int]:
    """Commit-to-visible latency of each write, and how many writes were never announced.

    commits: (position, monotonic commit time). announcements: (applied position, monotonic
    time), in arrival order. A write is visible at the first announcement whose position
    reaches it (announced positions only grow within a generation).
    """
    positions: list[int] = []
    times: list[float] = []
    highest = -1
    for position, at in announcements:
        if position > highest:  # a lower repeat adds nothing: the later one is already known
            positions.append(position)
            times.append(at)
            highest = position
    latencies: list[float] = []
    unseen = 0
    for position, committed in commits:
        index = bisect.bisect_left(positions, position)
        if index == len(positions):
            unseen += 1
            continue
        latencies.append(max(0.0, times[index] - committed) * 1000)
    return latencies, unseen


class Subscriber:
    """Notes (position, monotonic time) for each announcement on the positions channel."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.announcements: list[tuple[int, float]] = []
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="freshness-sub", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            now = time.monotonic()
            data = message["data"]
            text = data.decode() if isinstance(data, bytes) else str(data)
            _, _, position = text.rpartition(":")
            self.announcements.append((int(position), now))

    def highest(self) -> int:
        return self.announcements[-1][0] if self.announcements else 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()


def measure_store(
    store: str, store_url: str, prefix: str, rate: float, seconds: float, threads: int
) -> dict[str, Any]:
    from runtime.settings import event_store_env

    client = redis.Redis.from_url(redis_url())
    keys = Keys(prefix)
    subscriber = Subscriber(client, keys.positions_channel)
    subscriber.start()
    try:
        service = CustomerService(event_store_env(store_url))
        try:
            sample = load_sample(service, CUSTOMERS)
            registered = sample.last_position
            orders_before = sample.orders - sample.cancellations  # what the records count
        finally:
            service.close()
        # PostgreSQL: the projector in its own process, two producer processes (the GIL
        # would cap one). SQLite: one producer process that also runs the projector.
        projector = start_projector(store_url, prefix) if store == "postgres" else None
        producers = PRODUCER_PROCESSES if store == "postgres" else 1
        try:
            if projector is not None:
                wait_until(lambda: subscriber.highest() >= registered, 60, "the projector")
            schedule = Schedule(0.0, rate, int(rate * seconds), 0, producers, threads)
            children = []
            for first in range(producers):
                # One at a time: the library's schema statements collide when two
                # processes open one PostgreSQL store at the same moment.
                child = start_producer(store_url, prefix, replace(schedule, first=first),
                                       with_projector=projector is None)  # fmt: skip
                children.append(child)
                await_ready(child)  # connected (and caught up, with a projector)
            start = time.monotonic() + 0.2
            for child in children:
                assert child.stdin is not None
                child.stdin.write(f"{start}\n")
                child.stdin.flush()
            outputs = [collect(child) for child in children]
            commits = sorted(c for output in outputs for c in output["commits"])
            failures = sum(output["failures"] for output in outputs)
            last = commits[-1][0] if commits else 0
            # A write still unseen after the drain is counted below as never visible.
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: subscriber.highest() >= last, DRAIN_SECONDS, "the last write")
        finally:
            if projector is not None:
                stop_process(projector)
        wall = (commits[-1][1] - start) if commits else 0.0
        counted_from = start + WARM_UP_SECONDS
        measured = [(p, t) for p, t in commits if t >= counted_from]
        latencies, unseen = visible_latencies_ms(measured, subscriber.announcements)
        orders_in_redis = count_orders(client, keys)
    finally:
        subscriber.stop()
        client.close()
    result = latency_summary(latencies)
    result.update(
        {
            "store": store,
            "rate_per_s": rate,
            "achieved_per_s": round(len(commits) / wall, 1) if wall > 0 else 0,
            "seconds": round(wall, 2),
            "producer_processes": producers,
            "producer_threads": threads,
            "writes": len(commits),
            "failed_writes": failures,
            "warm_up_excluded": len(commits) - len(measured),
            "never_visible": unseen,
            "orders_in_read_model": orders_in_redis,
            "all_writes_in_read_model": orders_in_redis == orders_before + len(commits),
            "projector": "`customers project` in its own process, woken by NOTIFY"
            if store == "postgres"
            else "in the producer's process, woken by each append",
        }
    )
    return result


def count_orders(client: redis.Redis, keys: Keys) -> int:
    """Total orders over every customer record: each write must be there exactly once."""
    from projections.generation import current_generation

    generation = current_generation(client, keys)
    pipe = client.pipeline(transaction=False)
    for customer_id in range(1, CUSTOMERS + 1):
        pipe.hget(keys.bucket(generation, customer_id), orders_field(customer_id))
    return sum(int(value or 0) for value in pipe.execute())


def measure(stores: Sequence[str], rate: float, seconds: float, threads: int) -> dict[str, Any]:
    results: dict[str, Any] = {"rate_per_s": rate, "seconds": seconds}
    for store in stores:
        with fresh_redis_prefix("fresh") as prefix:
            if store == "postgres":
                with fresh_postgres_database("fresh") as url:
                    results[store] = measure_store(store, url, prefix, rate, seconds, threads)
            else:
                with tempfile.TemporaryDirectory(prefix="bench-freshness-") as folder:
                    url = f"sqlite:///{Path(folder) / 'events.sqlite'}"
                    results[store] = measure_store(store, url, prefix, rate, seconds, threads)
        summary = results[store]
        print(
            f"freshness {store}: p50 {summary.get('p50_ms', float('nan')):.1f} ms, "
            f"p99 {summary.get('p99_ms', float('nan')):.1f} ms at "
            f"{summary['achieved_per_s']:.0f} orders/s",
            flush=True,
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--rate", type=float, default=1000.0, help="orders per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=4, help="threads per producer process")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "freshness.json")
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = set(stores) - {"postgres", "sqlite"}
    if unknown or not stores:
        print(f"error: --stores takes postgres and/or sqlite, got {args.stores!r}", file=sys.stderr)
        return 2
    if args.rate <= 0 or args.seconds <= WARM_UP_SECONDS or args.threads < 1:
        print(
            f"error: need --rate > 0, --seconds > {WARM_UP_SECONDS}, --threads >= 1",
            file=sys.stderr,
        )
        return 2
    write_json(args.out, measure(stores, args.rate, args.seconds, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
