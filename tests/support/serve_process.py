"""`customers serve` as a real process on a free port, for tests that need the real server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from runtime.processes import free_port
from runtime.redis_store import STATE_FILE
from tests.support import local_http
from tests.support.waiting import wait_until

CUSTOMERS = str(Path(sys.executable).with_name("customers"))


class ServeProcess:
    def __init__(self, process: subprocess.Popen[str], base_url: str, log_path: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log_path = log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@contextmanager
def serve(
    data_dir: Path,
    redis_url: str | None,
    prefix: str,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[ServeProcess]:
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "EVENT_STORE_URL": f"sqlite:///{data_dir / 'events.sqlite'}",
        "REDIS_PREFIX": prefix,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **(extra_env or {}),
    }
    env.pop("REDIS_URL", None)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    log_path = data_dir.parent / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [CUSTOMERS, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
    running = ServeProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        assert wait_until(lambda: _answers(running), deadline=30), running.log
        yield running
    finally:
        if process.poll() is None:  # the test left it running
            process.kill()
            process.wait()
            _kill_embedded_redis_left_behind(data_dir)


def _kill_embedded_redis_left_behind(data_dir: Path) -> None:
    """An embedded Redis that serve restarted (from its supervisor's thread, so no signal
    of the kernel's ties it to serve) outlives serve killed -9 until the next start on
    the same DATA_DIR; a test's is never started again, so each run left one running."""
    try:
        pid = int(json.loads((data_dir / "redis" / STATE_FILE).read_text())["pid"])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return
    if b"valkey-server" in command:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _answers(running: ServeProcess) -> bool:
    if running.process.poll() is not None:
        raise AssertionError(f"serve exited early:\n{running.log}")
    try:
        return local_http.get(f"{running.base_url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
