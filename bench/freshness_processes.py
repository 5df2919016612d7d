"""The processes of bench/freshness.py: producers placing orders on a schedule, and
`customers project` (the production projector) on PostgreSQL.

    python -m bench.freshness_processes producer[-with-projector] STORE_URL PREFIX SCHEDULE

A producer connects, says READY, reads the schedule's start (CLOCK_MONOTONIC) on stdin,
places its share of the orders, each at its due time, and prints its commits as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any

import redis

from bench.common import redis_url
from bench.common_http import customers_command
from projections.read_model import Keys
from write_side.application import CustomerService

CUSTOMERS = 1000
READY = "ready"
# How long to wait after the last write for the projector to apply (and announce) it.
DRAIN_SECONDS = 5.0


def paced_orders(
    service: CustomerService,
    schedule: Schedule,
    after_write: Callable[[], None] | None = None,
) -> tuple[list[tuple[int, float]], int]:
    """Place this producer's share of the schedule's orders, each at its due time.

    Returns (position, monotonic commit time) of each order and the number of failed
    writes. A producer that falls behind does not skip: every scheduled order is placed.
    """
    commits: list[tuple[int, float]] = []
    failures = [0]
    lock = threading.Lock()

    def produce(thread: int) -> None:
        rng = random.Random(schedule.first + thread * 7919)
        mine: list[tuple[int, float]] = []
        stride = schedule.stride * schedule.threads
        for index in range(schedule.first + thread * schedule.stride, schedule.total, stride):
            delay = schedule.start + index / schedule.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            customer_id = rng.randrange(1, CUSTOMERS + 1)
            amount = Decimal(rng.randrange(100, 100_000)) / 100
            try:
                written = service.place_order(customer_id, amount)
            except Exception:
                with lock:
                    failures[0] += 1
                continue
            mine.append((written.position, time.monotonic()))
            if after_write is not None:
                after_write()
        with lock:
            commits.extend(mine)

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(schedule.threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(commits), failures[0]


@dataclass(frozen=True)
class Schedule:
    """Order number i is due at start + i / rate, for i in range(total).

    A producer process takes every stride-th order from `first`, over its threads.
    """

    start: float  # CLOCK_MONOTONIC, shared by every process on the machine; sent on stdin
    rate: float
    total: int
    first: int = 0
    stride: int = 1
    threads: int = 4


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {seconds:.0f} s waiting for {what}")
        time.sleep(0.01)


def start_projector(store_url: str, prefix: str) -> subprocess.Popen[bytes]:
    """`customers project`, the PostgreSQL deployment's projector, in its own process."""
    env = {**os.environ, "EVENT_STORE_URL": store_url, "REDIS_URL": redis_url(),
           "REDIS_PREFIX": prefix, "LOG_LEVEL": "WARNING"}  # fmt: skip
    return subprocess.Popen(customers_command("project"), env=env)


def start_producer(
    store_url: str, prefix: str, schedule: Schedule, with_projector: bool
) -> subprocess.Popen[str]:
    role = "producer-with-projector" if with_projector else "producer"
    module = [sys.executable, "-m", "bench.freshness_processes"]
    return subprocess.Popen(
        [*module, role, store_url, prefix, json.dumps(asdict(schedule))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def await_ready(child: subprocess.Popen[str]) -> None:
    """Block until a producer says it is connected and waiting for the start time."""
    assert child.stdout is not None
    line = child.stdout.readline()
    if line.strip() != READY:
        raise RuntimeError(f"a producer failed to start (exit code {child.poll()})")


def collect(child: subprocess.Popen[str]) -> dict[str, Any]:
    """A producer's JSON: its commits and failures."""
    output, _ = child.communicate(timeout=600)
    if child.returncode != 0:
        raise RuntimeError(f"a producer exited with code {child.returncode}")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def stop_process(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def run_producer_process(
    store_url: str, prefix: str, schedule: Schedule, with_projector: bool
) -> int:
    """Place this producer's orders; print {"commits": [[position, time]...], "failures"}.

    with_projector: also run the projector here, woken after each append (SQLite, which
    has no cross-process notifications, as `customers serve` runs it).
    """
    from projections.live_loop import run_live
    from projections.projector import Projector
    from runtime.settings import event_store_env

    service = CustomerService(event_store_env(store_url))
    client = redis.Redis.from_url(redis_url())
    stop = threading.Event()
    projector_thread: threading.Thread | None = None
    notify: Callable[[], None] | None = None
    if with_projector:
        projector = Projector(service.recorder, client, Keys(prefix))
        projector.catch_up()
        projector_thread = threading.Thread(target=run_live, args=(projector, stop), daemon=True)
        projector_thread.start()
        notify = projector.notify
    service.recorder.max_notification_id()  # connected
    print(READY, flush=True)
    schedule = replace(schedule, start=float(sys.stdin.readline()))
    try:
        commits, failures = paced_orders(service, schedule, notify)
        if projector_thread is not None:
            last = commits[-1][0] if commits else 0
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: projector.position >= last, DRAIN_SECONDS, "the projector")
    finally:
        stop.set()
        if projector_thread is not None:
            projector_thread.join(timeout=10)
        client.close()
        service.close()
    print(json.dumps({"commits": commits, "failures": failures}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    role, store_url, prefix, schedule = sys.argv[1:] if argv is None else argv
    with_projector = role == "producer-with-projector"
    return run_producer_process(store_url, prefix, Schedule(**json.loads(schedule)), with_projector)


if __name__ == "__main__":
    sys.exit(main())
