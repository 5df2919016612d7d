"""`customers rebuild --workers N`: N processes fill the new generation, slices split.

Worker W applies the slices S with S mod N == W (projections/worker_share.FixedShare):
the rebuilding process is worker 0, and starts N - 1 others. Each reads the whole log but
sends only its customers, so N cores share the work that bounds a rebuild. Each records
its slices' positions; when all have reached the head, the rebuild applies what came
after and switches (projections/rebuild.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO

from projections.read_model import SLICES
from projections.rebuild import Fill, RebuildError

POLL_SECONDS = 0.2


def slices_of(worker: int, workers: int) -> list[int]:
    return [s for s in range(SLICES) if s % workers == worker]


def worker_command(generation: int, slices: list[int], page_size: int | None) -> list[str]:
    command = [sys.executable, "-c", "from runtime.cli import main; main()", "rebuild-worker"]
    command += ["--generation", str(generation), "--slices", ",".join(map(str, slices))]
    if page_size is not None:
        command += ["--page-size", str(page_size)]
    return command


def fill_with_workers(
    workers: int,
    page_size: int | None,
    fill_own: Callable[[int, frozenset[int]], int],
    applied: Callable[[int], int],
) -> Fill:
    """A Fill for projections.rebuild: this process fills worker 0's slices with
    `fill_own(generation, slices)` while `workers - 1` processes fill the others;
    `applied(generation)` reads how far every slice got (for progress)."""

    def fill(generation: int) -> int:
        with contextlib.ExitStack() as stack:
            logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(workers)]
            children = [
                subprocess.Popen(  # noqa: S603  (this interpreter, our own command)
                    worker_command(generation, slices_of(w, workers), page_size),
                    stdout=subprocess.PIPE,
                    stderr=logs[w],
                )
                for w in range(1, workers)
            ]
            stack.callback(_kill_all, children)
            # Meanwhile the helpers start up (an interpreter's imports take a while).
            events = fill_own(generation, frozenset(slices_of(0, workers)))
            while any(child.poll() is None for child in children):
                _check(children, logs)
                applied(generation)
                time.sleep(POLL_SECONDS)
            read = [child.communicate()[0] for child in children]
            _check(children, logs)
            # Each worker reads every event and applies its slices' share of them.
            return max([events, *(int(out.decode().strip() or 0) for out in read)])

    return fill


def _check(children: list[subprocess.Popen[bytes]], logs: Sequence[IO[bytes]]) -> None:
    """Raise RebuildError naming the first worker that failed, with its last line."""
    for helper, child in enumerate(children, start=1):
        if child.returncode not in (None, 0):
            raise RebuildError(_failure(helper, logs[helper]))


def _kill_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait()


def _failure(worker: int, log: IO[bytes]) -> str:
    """(Worker 0 is this process; the helpers are 1 to N - 1.)"""
    log.seek(0)
    lines = log.read().decode(errors="replace").strip().splitlines()
    last = lines[-1].removeprefix("error: ") if lines else "no message"
    return f"rebuild worker {worker} failed: {last}"
