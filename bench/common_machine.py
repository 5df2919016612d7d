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

LIBRARIES = ("eventsourcing", "fastapi", "starlette", "uvicorn", "pydantic", "redis", "hiredis",
             "psycopg", "orjson", "uvloop", "httptools")  # fmt: skip


def _proc_field(path: str, prefix: str) -> str | None:
    """The value after `prefix:` on the first such line of a /proc file, if any."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(prefix)), None)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _redis_server() -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(redis_url(), socket_timeout=2)
        try:
            return str(client.info("server").get("redis_version")) or None
        finally:
            client.close()
    except redis.RedisError:
        return None


def _postgres_server() -> str | None:
    import psycopg

    try:
        with psycopg.connect(postgres_admin_url(), connect_timeout=2) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def _wrk() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    # wrk prints its version banner on -v and exits non-zero; the first line is enough.
    completed = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=5, check=False)
    banner = (completed.stdout or completed.stderr).strip().splitlines()
    return banner[0].split(" Copyright")[0] if banner else None


def describe_machine() -> dict[str, Any]:
    """Everything a reader needs to judge the absolute numbers."""
    import psycopg

    memory_kib = _proc_field("/proc/meminfo", "MemTotal")
    return {
        "cpu_model": _proc_field("/proc/cpuinfo", "model name") or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "memory_gib": round(int(memory_kib.split()[0]) / 1024**2, 1) if memory_kib else None,
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        # 'binary' or 'c'; the pure-Python implementation decodes rows several times slower
        "psycopg_implementation": str(psycopg.pq.__impl__),
        "redis_server": _redis_server(),
        "postgres_server": _postgres_server(),
        "wrk": _wrk(),
    }
