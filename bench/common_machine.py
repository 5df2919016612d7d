"""What the numbers came from: the machine, the software versions and the servers."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.common import postgres_admin_url, redis_url

LIBRARIES = (
    "eventsourcing",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "redis",
    "hiredis",
    "psycopg",
    "orjson",
    "uvloop",
    "httptools",
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def psycopg_implementation() -> str | None:
    """'c', 'binary' or 'python': the pure-Python one decodes rows several times slower."""
    try:
        import psycopg
    except ImportError:
        return None
    return str(psycopg.pq.__impl__)


def redis_server_version() -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(redis_url(), socket_timeout=2)
        try:
            info = client.info("server")
        finally:
            client.close()
    except redis.RedisError:
        return None
    return str(info.get("redis_version")) if info.get("redis_version") else None


def postgres_server_version() -> str | None:
    import psycopg

    try:
        with psycopg.connect(postgres_admin_url(), connect_timeout=2) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    # wrk prints its version banner on -v and exits non-zero; the first line is enough.
    completed = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=5, check=False)
    banner = (completed.stdout or completed.stderr).strip().splitlines()
    return banner[0].split(" Copyright")[0] if banner else None


def describe_machine() -> dict[str, Any]:
    """Everything a reader needs to judge the absolute numbers."""
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "libraries": library_versions(),
        "psycopg_implementation": psycopg_implementation(),
        "redis_server": redis_server_version(),
        "postgres_server": postgres_server_version(),
        "wrk": wrk_version(),
    }
