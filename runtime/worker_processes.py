"""`customers project --workers N`: N projector processes on this machine, kept running.

Each child is a plain `customers project`: a member of the read model's workers' group in
PostgreSQL like a projector started on any other machine, so they share the slices with
each other and with those. Processes, not threads: each has its own interpreter, so the
work spreads over the cores. A child that dies is started again after a second (its slices
are taken over by the others meanwhile; one failing again and again waits longer each
time, up to 30 s); SIGTERM or Ctrl-C stops them all.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

RESTART_DELAY_SECONDS = 1.0  # doubled after each quick failure, up to the maximum
MAX_RESTART_DELAY_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0  # a worker that ran this long starts the delay over
STOP_TIMEOUT_SECONDS = 30.0


def worker_command(page_size: int | None) -> list[str]:
    command = [sys.executable, "-c", "from runtime.cli import main; main()", "project"]
    if page_size is not None:
        command += ["--page-size", str(page_size)]
    return command


def run_workers(count: int, page_size: int | None, report: Callable[[str], None]) -> int:
    """Run `count` workers until SIGTERM/SIGINT; returns the exit code (0: stopped)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    command = worker_command(page_size)
    children = [_start(command) for _ in range(count)]
    report(f"started {count} projector workers (pids {', '.join(str(c.pid) for c in children)})")
    started_at = [time.monotonic()] * count
    delay = [RESTART_DELAY_SECONDS] * count
    restart_at: dict[int, float] = {}
    try:
        while not stop.wait(0.2):
            for index, child in enumerate(children):
                code = child.poll()
                if code is None:
                    continue
                now = time.monotonic()
                if index not in restart_at:
                    if now - started_at[index] >= HEALTHY_AFTER_SECONDS:
                        delay[index] = RESTART_DELAY_SECONDS
                    report(
                        f"worker {child.pid} exited with {code}; "
                        f"starting another in {delay[index]:.0f} s"
                    )
                    restart_at[index] = now + delay[index]
                    delay[index] = min(2 * delay[index], MAX_RESTART_DELAY_SECONDS)
                elif now >= restart_at[index]:
                    del restart_at[index]
                    children[index] = _start(command)
                    started_at[index] = now
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return 0


def _start(command: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command)  # noqa: S603  (this interpreter, our own command)
