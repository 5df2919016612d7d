"""Baseline apps the read endpoint is measured against (bench/read_path.py starts them).

Plain uvicorn on purpose, one worker with uvloop and httptools: what a FastAPI service gets
without our server configuration. Their shared flags live here, once.
"""

from __future__ import annotations

import sys

UVICORN_FLAGS = ("--loop", "uvloop", "--http", "httptools", "--no-access-log", "--workers", "1")
APPS = {
    "bare": "bench.read_baselines.bare:app",
    "hgetall": "bench.read_baselines.redis_hgetall:app",
    "postgres": "bench.read_baselines.postgres_sum:app",
}


def command(name: str, port: int) -> list[str]:
    """The uvicorn command line serving baseline `name` on 127.0.0.1:port."""
    return [sys.executable, "-m", "uvicorn", APPS[name], "--port", str(port), *UVICORN_FLAGS]
