"""One Valkey against a 3-master + 3-replica Valkey Cluster: projection and reads, side by side.

    python -m bench.cluster --customers 10000 --duration 3 --rounds 2

Both read models run on the same bundled Valkey binary (the cluster started by the tests'
own launcher, tests/support/valkey_cluster.py), on this machine, so the comparison is the
layout of the deployment alone. Projection: the same SQLite store of sample customers is
projected into each by our projector in this process; wall time and this process's CPU
per 1,000 events. Reads: `customers read-api` on each, wrk with 32 connections over random
customers, in interleaved rounds; the goal is at least 0.8x the single node's rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, write_json
from bench.common_data import DESCRIPTION, load_sample
from bench.common_http import customers_command, free_port, read_script, run_wrk, serving
from bench.read_path import median_run
from projections.projector import Projector
from projections.read_model import Keys
from projections.redis_client import RedisClient, connect
from runtime.settings import event_store_env
from tests.support.valkey_cluster import ValkeyCluster
from tests.support.valkey_process import ValkeyProcess
from write_side.application import CustomerService

CONNECTIONS = 32
PREFIX = "bench"


def project_into(store_url: str, client: RedisClient, prefix: str) -> dict[str, Any]:
    service = CustomerService(event_store_env(store_url))
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        projector = Projector(service.recorder, client, Keys(prefix))
        projector.catch_up()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        events = projector.position
    finally:
        service.close()
    return {
        "events": events,
        "seconds": round(wall, 2),
        "eps": round(events / wall) if wall else None,
        "cpu_ms_per_1k_events": round(1000 * cpu / events * 1000, 1) if events else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "cluster.json")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as temp:
        folder = Path(temp)
        single = ValkeyProcess(folder / "single")
        single.start()
        try:
            with ValkeyCluster(folder / "cluster", node_timeout_ms=5000) as cluster:
                result = measure(args, folder, {"single": single.url, "cluster": cluster.url})
                result["cluster_startup_seconds"] = round(cluster.startup_seconds or 0, 2)
        finally:
            single.stop()
    write_json(args.out, result)
    projection, reads = result["projection"], result["reads"]
    for name in ("single", "cluster"):
        done, served = projection[name], reads[name]
        print(f"{name:8} projection {done['eps']:>9,} events/s "
              f"({done['cpu_ms_per_1k_events']} ms CPU per 1k); "
              f"reads {served['rps']:>9,.0f} req/s p99 {served['p99_ms']} ms")  # fmt: skip
    ratios = f"reads {result['read_ratio']}x, projection {result['projection_ratio']}x"
    print(f"cluster vs single: {ratios}")
    return 0


def measure(args: argparse.Namespace, folder: Path, urls: dict[str, str]) -> dict[str, Any]:
    store_url = f"sqlite:///{folder / 'events.sqlite'}"
    service = CustomerService(event_store_env(store_url))
    try:
        written = load_sample(service, args.customers).events
        key = service.issue_api_key("bench-staff", "staff").key
    finally:
        service.close()
    # A prefix each: the event store notes how far each read model (by prefix) was brought.
    projection = {
        name: project_into(store_url, connect(url), f"{PREFIX}-{name}")
        for name, url in urls.items()
    }
    script = read_script(folder, args.customers, key)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
    for _ in range(args.rounds):
        for name, url in urls.items():  # interleaved: the machine's drift falls on both
            port = free_port()
            env = {
                **os.environ,
                "EVENT_STORE_URL": store_url,
                "REDIS_URL": url,
                "REDIS_PREFIX": f"{PREFIX}-{name}",
                "LOG_LEVEL": "WARNING",
                "PORT": str(port),
            }
            headers = {"Authorization": f"Token {key}"}
            log = folder / f"read-{name}.log"
            with serving(
                customers_command("read-api"), env, port, "/api/customers/1", log, headers
            ):
                run_wrk(port, script, CONNECTIONS, 1)
                rounds[name].append(run_wrk(port, script, CONNECTIONS, args.duration))
            print(f"{name:8} {rounds[name][-1]}", file=sys.stderr)
    reads = {name: median_run(runs) for name, runs in rounds.items()}
    return {
        "customers": args.customers,
        "events": written,
        "data": DESCRIPTION,
        "cluster": "3 masters + 3 replicas, cluster-node-timeout 5000 ms, AOF everysec",
        "connections": CONNECTIONS,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "projection": projection,
        "projection_ratio": round(projection["cluster"]["eps"] / projection["single"]["eps"], 2),
        "reads": reads,
        "all_rounds": rounds,
        "read_ratio": round(reads["cluster"]["rps"] / reads["single"]["rps"], 2),
        "load_average": os.getloadavg(),
    }


if __name__ == "__main__":
    sys.exit(main())
