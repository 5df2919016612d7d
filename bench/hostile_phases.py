"""The phases of bench/hostile.py: wrk reading while, in a hostile phase, the hostile
clients (bench.hostile_cases) run alongside; each phase's reads, memory and CPU.

A run warms up (wrk, and each hostile case once), then takes turns: for each round a
quiet phase, what the hostile one is measured against, then a hostile phase.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RssSampler, cpu_seconds
from bench.common_http import run_wrk
from bench.hostile_cases import (
    ANSWER_TIMEOUT_SECONDS,
    HOSTILE_CASES,
    CaseTally,
    Keys,
    SlowlorisTally,
    hostile_loop,
    send_case,
    slowloris,
)
from bench.hostile_outcomes import slowloris_summary, tally_summary

WARM_UP_SECONDS = 2


def own_cpu_seconds() -> float:
    """CPU seconds of this script and its ended children (wrk), user + system."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


async def phase(
    hostile: bool,
    port: int,
    keys: Keys,
    script: Path,
    args: argparse.Namespace,
    sampler: RssSampler,
) -> dict[str, Any]:
    """One wrk run of the reads; in a hostile phase, with the hostile clients alongside."""
    stop = asyncio.Event()
    tallies: dict[str, CaseTally] = {}
    lorises = SlowlorisTally()
    clients: list[asyncio.Task[None]] = []
    server_cpu, client_cpu = cpu_seconds(sampler.pid), own_cpu_seconds()
    started = time.monotonic()
    if hostile:
        clients = [
            asyncio.create_task(slowloris(port, stop, lorises)) for _ in range(args.slowloris)
        ]
        clients.append(asyncio.create_task(hostile_loop(port, keys, stop, tallies)))
    read = await asyncio.to_thread(run_wrk, port, script, args.read_connections, args.duration)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*clients), ANSWER_TIMEOUT_SECONDS + 5)
    ended = time.monotonic()
    server_after = cpu_seconds(sampler.pid)
    result: dict[str, Any] = {
        "kind": "hostile" if hostile else "quiet",
        "read": read,
        "seconds": round(ended - started, 2),
        "peak_rss_mb": sampler.peak_mb(started, ended),
        # CPU seconds the phase took: the server's, and this script's (with wrk, its child)
        "server_cpu_s": None
        if server_cpu is None or server_after is None
        else round(server_after - server_cpu, 2),
        "client_cpu_s": round(own_cpu_seconds() - client_cpu, 2),
    }
    if hostile:
        result["hostile_requests"] = tally_summary(tallies, ended - started)
        result["slowloris"] = slowloris_summary(lorises, args.slowloris)
    return result


async def measure(
    port: int, keys: Keys, script: Path, args: argparse.Namespace, sampler: RssSampler
) -> list[dict[str, Any]]:
    await asyncio.to_thread(run_wrk, port, script, args.read_connections, WARM_UP_SECONDS)
    # Each hostile case once, so the write routes' first-use costs land in no phase.
    warm_up: dict[str, Any] = {}
    for case in HOSTILE_CASES:
        started = time.perf_counter()
        outcome, json_body = await send_case(port, case.build(keys))
        warm_up[case.name] = {
            "status": outcome,
            "json": json_body,
            "ms": round((time.perf_counter() - started) * 1000, 2),
        }
    phases: list[dict[str, Any]] = [{"kind": "warm_up", "hostile_cases": warm_up}]
    for round_number in range(1, args.rounds + 1):
        for hostile in (False, True):  # quiet first: what the hostile run is measured against
            result = await phase(hostile, port, keys, script, args, sampler)
            result["round"] = round_number
            read = result["read"]
            print(
                f"round {round_number} {result['kind']:7} {read['rps']:>8,.0f} req/s  "
                f"p50 {read['p50_ms']} ms  p99 {read['p99_ms']} ms  "
                f"peak RSS {result['peak_rss_mb']} MB",
                file=sys.stderr,
            )
            if hostile:
                requests = result["hostile_requests"]
                print(
                    f"  hostile: {requests['sent']} sent, {requests['by_status']}", file=sys.stderr
                )
                print(f"  slowloris: {result['slowloris']}", file=sys.stderr)
            phases.append(result)
    return phases
