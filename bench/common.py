"""Shared pieces of the benchmark scripts: statistics, servers, fresh stores, JSON output."""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Quantiles kept for latency distribution charts: dense near the tail, where it matters.
DISTRIBUTION_QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value at `fraction` (0..1) of the sorted values, linearly interpolated.

    Matches numpy's default ("linear") method, so numbers compare with other tools.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be within 0..1, got {fraction}")
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(ordered[low])
    weight = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * weight)


def latency_summary(values_ms: Sequence[float]) -> dict[str, Any]:
    """Count, mean, p50/p90/p99/max and a quantile curve of latencies in milliseconds."""
    if not values_ms:
        return {"count": 0}
    ordered = sorted(values_ms)
    return {
        "count": len(ordered),
        "mean_ms": round(sum(ordered) / len(ordered), 3),
        "p50_ms": round(percentile(ordered, 0.5), 3),
        "p90_ms": round(percentile(ordered, 0.9), 3),
        "p99_ms": round(percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3),
        "distribution": [[q, round(percentile(ordered, q), 3)] for q in DISTRIBUTION_QUANTILES],
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator rounded for reports; None when either side is missing."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 2)


# Servers


def postgres_admin_url() -> str:
    """A PostgreSQL URL allowed to create databases: BENCH_POSTGRES_URL or the local one."""
    return os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def redis_url() -> str:
    """The Redis to measure against: BENCH_REDIS_URL or the local one."""
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def unreachable_servers() -> list[str]:
    """One line per configured server that does not accept connections."""
    problems = []
    for name, url, default_port in (
        ("PostgreSQL", postgres_admin_url(), 5432),
        ("Redis", redis_url(), 6379),
    ):
        parsed = urlparse(url)
        host = parsed.hostname or "127.0.0.1"
        port = parsed.port or default_port
        try:
            with socket.create_connection((host, port), timeout=1.0):
                pass
        except OSError as error:
            problems.append(f"{name} at {host}:{port} is unreachable ({error.strerror or error})")
    return problems


def unique_name(kind: str) -> str:
    """A short name no other run uses, for databases, schemas and key prefixes."""
    return f"bench_{kind}_{uuid.uuid4().hex[:10]}"


@contextmanager
def fresh_postgres_database(kind: str = "db") -> Iterator[str]:
    """A new, empty PostgreSQL database for one measurement, dropped afterwards."""
    import psycopg

    admin = postgres_admin_url()
    name = unique_name(kind)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunparse(urlparse(admin)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_redis_prefix(kind: str = "rm") -> Iterator[str]:
    """A read model key prefix no one else uses; its keys are deleted afterwards."""
    prefix = unique_name(kind)
    try:
        yield prefix
    finally:
        delete_prefix(prefix)


def delete_prefix(prefix: str) -> None:
    """Delete every key under a prefix (both plain and {hash-tagged} forms)."""
    import redis

    client = redis.Redis.from_url(redis_url())
    try:
        for pattern in (f"{prefix}:*", f"{{{prefix}}}:*"):
            for batch in chunks(list(client.scan_iter(match=pattern, count=5000)), 5000):
                client.unlink(*batch)
    finally:
        client.close()


# Output


def write_json(path: Path, data: Any) -> Path:
    """Write results as indented JSON, creating the folder; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in KiB, from /proc/PID/status."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


class RssSampler:
    """A thread sampling a process's VmRSS every `interval` seconds, with timestamps."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        rss = memory_kib(self.pid).get("VmRSS")
        if rss is not None:
            self.samples.append((time.monotonic(), rss))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the end of the block, however short it was

    def peak_mb(self, start: float, end: float) -> float | None:
        within = [kib for at, kib in self.samples if start <= at <= end]
        return round(max(within) / 1024, 1) if within else None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
