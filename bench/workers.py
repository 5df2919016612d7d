"""Projector workers: 1 vs 2 `customers project` processes, rebuild with 1 vs 2, takeovers.

    python -m bench.workers --customers 10000 [--out bench/results/workers.json]

One fresh PostgreSQL database holds the sample customers' events; every run projects
them from nothing into a fresh key prefix of the same Redis, one after another:

  project   N real `customers project` processes (N = 1, then 2) sharing the slices
            through PostgreSQL. Wall: from the first worker's "projecting" line until the
            read model's position (every slice's) reaches the head. CPU: the workers' own
            user + system time over the same span (from /proc), per 1,000 events.
  rebuild   projections.rebuild as `customers rebuild [--workers 2]` runs it; wall time of
            the replay and switch, and the CPU of this process and its worker processes.
  takeover  two workers catching up in small pages; at a third of the way one is killed -9
            (or stopped with SIGSTOP): the time until the other holds every slice.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.common import (
    RESULTS_DIR,
    fresh_postgres_database,
    fresh_redis_prefix,
    ratio,
    redis_url,
    write_json,
)
from bench.common_data import DESCRIPTION, load_sample
from bench.common_http import customers_command
from contract.application import APPLICATION_NAME
from projections.read_model import SLICES, Keys
from runtime.settings import event_store_env
from write_side.application import CustomerService

TICKS = os.sysconf("SC_CLK_TCK")
DEADLINE_SECONDS = 600.0
TAKEOVER_PAGE = 50


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def applied(client: redis.Redis, keys: Keys) -> int:
    generation = int(client.get(keys.generation) or 1)
    return int(client.hget(keys.tracking(generation), APPLICATION_NAME) or 0)


def wait(condition: Callable[[], bool], what: str) -> float:
    """Poll every 10 ms; the time it became true."""
    ends = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > ends:
            raise RuntimeError(f"timed out waiting until {what}")
        time.sleep(0.01)
    return time.monotonic()


class Workers:
    """N `customers project` processes on one store and prefix."""

    def __init__(self, count: int, env: dict[str, str], *args: str) -> None:
        self.processes = [
            subprocess.Popen(
                customers_command("project", *args),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]

    def ready(self) -> float:
        """Wait for each to print its "projecting" line; the time the first did."""
        first = None
        for process in self.processes:
            assert process.stderr is not None
            line = process.stderr.readline()
            if "projecting" not in line:
                raise RuntimeError(f"a worker did not start: {line.strip()}")
            first = first or time.monotonic()
        assert first is not None
        return first

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes if p.poll() is None)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes:
            process.communicate(timeout=60)


def project(count: int, env: dict[str, str], head: int) -> dict[str, Any]:
    client = redis.Redis.from_url(env["REDIS_URL"])
    keys = Keys(env["REDIS_PREFIX"])
    workers = Workers(count, env)
    try:
        started = workers.ready()
        cpu_before = workers.cpu()  # (each worker's start-up, before its first page, is left out)
        done = wait(lambda: applied(client, keys) >= head, "the workers caught up")
        cpu = workers.cpu() - cpu_before
    finally:
        workers.stop()
    seconds = done - started
    return {
        "workers": count,
        "events": head,
        "seconds": round(seconds, 2),
        "eps": round(head / seconds),
        "cpu_ms_per_1k_events": round(cpu / head * 1e6, 1),
    }


def slice_owners(store_url: str, group: str) -> list[str | None]:
    with psycopg.connect(store_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT owner FROM projection_slices WHERE read_model = %s ORDER BY slice", (group,)
        ).fetchall()
    return [owner for (owner,) in rows]


def takeover(fault: signal.Signals, env: dict[str, str], head: int) -> dict[str, Any]:
    client = redis.Redis.from_url(env["REDIS_URL"])
    keys = Keys(env["REDIS_PREFIX"])
    store_url, group = env["EVENT_STORE_URL"], env["REDIS_PREFIX"]
    workers = Workers(2, env, "--page-size", str(TAKEOVER_PAGE))  # small: a longer catch-up
    try:
        workers.ready()
        victim, survivor = workers.processes

        def split() -> bool:
            return len({o for o in slice_owners(store_url, group) if o is not None}) == 2

        wait(split, "both workers hold slices")
        wait(lambda: applied(client, keys) >= head // 3, "a third applied")
        victim.send_signal(fault)
        faulted = time.monotonic()

        def taken_over() -> bool:
            owners = slice_owners(store_url, group)
            return len(owners) == SLICES and all(f":{survivor.pid}:" in (o or "") for o in owners)

        seconds = wait(taken_over, "the survivor holds every slice") - faulted
        position = applied(client, keys)
    finally:
        workers.stop()
    return {
        "fault": fault.name,
        "seconds": round(seconds, 2),
        "at_position": position,
        "mid_catch_up": position < head,
    }


def rebuild_with(workers: int, env: dict[str, str]) -> dict[str, Any]:
    from projections.rebuild import fill_slices, rebuild
    from runtime.rebuild_workers import fill_with_workers

    os.environ.update(env)  # the worker processes read their settings from it
    client = redis.Redis.from_url(env["REDIS_URL"], socket_timeout=60)
    keys = Keys(env["REDIS_PREFIX"])
    service = CustomerService(event_store_env(env["EVENT_STORE_URL"]))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = time.process_time()
    try:

        def fill_own(generation: int, slices: frozenset[int]) -> int:
            return fill_slices(service.recorder, client, keys, generation, slices)

        fill = fill_with_workers(workers, None, fill_own, lambda _: 0) if workers > 1 else None
        result = rebuild(service.recorder, client, keys, drop_grace=0.0, fill=fill)
    finally:
        service.close()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    cpu = time.process_time() - own + child_cpu
    return {
        "workers": workers,
        "events": result.position,
        "seconds": round(result.seconds, 2),
        "eps": round(result.position / result.seconds),
        "cpu_seconds": round(cpu, 2),
    }


def measure(customers: int) -> dict[str, Any]:
    with fresh_postgres_database("workers") as store_url:
        service = CustomerService(event_store_env(store_url))
        try:
            written = load_sample(service, customers).events
            head = service.recorder.max_notification_id() or 0
        finally:
            service.close()

        def run(kind: str, measure_one: Callable[[dict[str, str]], dict[str, Any]]) -> Any:
            with fresh_redis_prefix(kind) as prefix:
                env = {
                    **os.environ,
                    "EVENT_STORE_URL": store_url,
                    "REDIS_URL": redis_url(),
                    "REDIS_PREFIX": prefix,
                    "LOG_LEVEL": "WARNING",
                }
                row = measure_one(env)
            print(f"{kind}: {row}", file=sys.stderr)
            return row

        projection = [run(f"project{n}", lambda e, n=n: project(n, e, head)) for n in (1, 2)]
        rebuilds = [run(f"rebuild{n}", lambda e, n=n: rebuild_with(n, e)) for n in (1, 2)]
        takeovers = [
            run(f"takeover{f.name}", lambda e, f=f: takeover(f, e, head))
            for f in (signal.SIGKILL, signal.SIGSTOP)
        ]
    one, two = projection
    return {
        "customers": customers,
        "events": written,
        "data": DESCRIPTION,
        "store": "PostgreSQL",
        "projection": projection,
        "projection_wall_ratio": ratio(one["seconds"], two["seconds"]),
        "projection_cpu_ratio": ratio(two["cpu_ms_per_1k_events"], one["cpu_ms_per_1k_events"]),
        "rebuild": rebuilds,
        "rebuild_wall_ratio": ratio(rebuilds[0]["seconds"], rebuilds[1]["seconds"]),
        "takeover": takeovers,
        "load_average": os.getloadavg(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "workers.json")
    args = parser.parse_args(argv)
    result = measure(args.customers)
    write_json(args.out, result)
    for row in result["projection"]:
        print(f"project x{row['workers']}: {row['eps']:>9,} events/s, {row['seconds']} s, "
              f"{row['cpu_ms_per_1k_events']} ms CPU per 1k events")  # fmt: skip
    for row in result["rebuild"]:
        print(f"rebuild x{row['workers']}: {row['eps']:>9,} events/s, {row['seconds']} s, "
              f"{row['cpu_seconds']} s CPU")  # fmt: skip
    for row in result["takeover"]:
        print(f"takeover after {row['fault']}: {row['seconds']} s")
    wall, cpu = result["projection_wall_ratio"], result["projection_cpu_ratio"]
    print(f"2 workers vs 1: wall {wall}x as fast, CPU per event {cpu}x; "
          f"rebuild {result['rebuild_wall_ratio']}x as fast")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
