"""Profile a benchmark part with py-spy and summarise where the time goes.

py-spy samples from outside the process (and its children), so the measured code runs
unchanged. Its raw output is one collapsed stack per line, "frame;frame;...;frame COUNT",
each frame "function (path:line)"; with --subprocesses the first frame names the process.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<function>.*?) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")
SITE_PACKAGES = re.compile(r".*/site-packages/")
STDLIB = re.compile(r".*/lib/python3\.\d+/")
IMPORTING = "<frozen importlib._bootstrap>"
INFORMATIVE_PACKAGES = frozenset(
    ("write_side", "read_side", "projections", "runtime", "edge", "bench", "eventsourcing",
     "redis", "psycopg", "uvicorn", "fastapi", "starlette", "pydantic")
)  # fmt: skip
PROFILE_ENV = "BENCH_PROFILE_OUT"
RATE = 97  # samples per second, off the beat of periodic work


def parse_collapsed(text: str, process: str | None = None) -> list[tuple[list[str], int]]:
    """Stacks (outermost first) with their sample counts; malformed lines are skipped.

    With `process`, only stacks from processes whose command line contains it are kept.
    """
    stacks: list[tuple[list[str], int]] = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame for frame in stack.split(";") if frame]
        if frames and frames[0].startswith("process "):
            if process is not None and process not in frames[0]:
                continue
            frames = frames[1:]
        elif process is not None:
            continue
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def frame_name(frame: str) -> str:
    """`function (module)` without the line number, paths shortened to the package."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['function']} ({short_path(match['path'])})"


def short_path(path: str) -> str:
    path = SITE_PACKAGES.sub("", path)
    path = STDLIB.sub("", path)
    for marker in (
        "/write_side/",
        "/read_side/",
        "/projections/",
        "/runtime/",
        "/edge/",
        "/bench/",
    ):
        index = path.find(marker)
        if index >= 0:
            return path[index + 1 :]
    return path


def is_informative(name: str) -> bool:
    """A caller worth naming: in our code or a store/HTTP library, not an entry point."""
    function, _, where = name.partition(" (")
    if function in ("<module>", "main", "_main") or function.startswith("_run"):
        return False
    return where.split("/", 1)[0].removesuffix(".py)") in INFORMATIVE_PACKAGES


def package_of(frame: str) -> str:
    """The top-level package a frame runs in: 'eventsourcing', 'redis', 'projections', ..."""
    match = FRAME.match(frame)
    path = short_path(match["path"]) if match else frame
    if path.startswith("<"):
        return "python internals"
    head = path.split("/", 1)[0]
    return head.removesuffix(".py")


def summarise(text: str, top: int = 10, process: str | None = None) -> dict[str, Any]:
    """Top functions by self and total share of samples, and self share by package."""
    # Start-up imports are not what a loaded process spends its time on.
    stacks = [
        (frames, count)
        for frames, count in parse_collapsed(text, process)
        if not any(IMPORTING in frame for frame in frames)
    ]
    samples = sum(count for _, count in stacks)
    if samples == 0:
        return {"samples": 0, "top": [], "top_total": [], "packages": []}
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    package_counts: Counter[str] = Counter()
    for frames, count in stacks:
        self_counts[frame_name(frames[-1])] += count
        package_counts[package_of(frames[-1])] += count
        for name in {frame_name(frame) for frame in frames}:
            total_counts[name] += count
    rows = [
        {
            "function": name,
            "self_pct": round(100 * count / samples, 1),
            "total_pct": round(100 * total_counts[name] / samples, 1),
        }
        for name, count in self_counts.most_common(top)
    ]
    callers = [
        {"function": name, "total_pct": round(100 * count / samples, 1)}
        for name, count in total_counts.most_common()
        # A frame on nearly every stack is an entry point, not a finding.
        if is_informative(name) and count < 0.9 * samples
    ][:top]
    packages = [
        {"package": name, "self_pct": round(100 * count / samples, 1)}
        for name, count in package_counts.most_common(6)
    ]
    return {
        "samples": samples,
        "top": rows,
        "top_total": callers,
        "packages": packages,
        "reading": reading(packages, rows),
    }


def reading(packages: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]] = ()) -> str:
    """Where most samples were spent, by package and the single largest function."""
    if not packages:
        return ""
    shares = ", ".join(f"{p['package']} {p['self_pct']:.0f}%" for p in packages[:4])
    text = f"Samples by package (self time): {shares}."
    if rows:
        text += (
            f" The largest single cost is `{rows[0]['function']}` at "
            f"{rows[0]['self_pct']:.0f}% of the samples."
        )
    return text


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter, or on PATH."""
    import sys

    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def profile_command(
    command: Sequence[str],
    out: Path,
    timeout: float,
    *,
    process: str | None = None,
    phase_only: bool = False,
    rate: int = RATE,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Run a command with py-spy sampling it, and summarise the samples.

    Three scopes: the whole command and its subprocesses (default); only its measured
    phase, which the command samples itself (phase_only, see profiled_phase), so setup
    such as filling a store stays out; or only the first subprocess whose command line
    contains `process` (a server under load), attached to as soon as it starts.
    """
    executable = py_spy()
    if executable is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    if phase_only:
        env[PROFILE_ENV] = str(out)
        scope = "the measured phase only"
    elif process:
        scope = f"the process running `{process}`"
    else:
        scope = "the whole run"
    sampler: list[str] | None = None
    if not phase_only and not process:
        sampler = [executable, "record", "--format", "raw", "--rate", str(rate)]
        sampler += ["--subprocesses", "--nonblocking", "-o", str(out), "--"]
    started = time.monotonic()
    child = subprocess.Popen(
        [*(sampler or []), *command],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    attacher: threading.Thread | None = None
    if process:
        attacher = threading.Thread(
            target=_attach_to_descendant,
            args=(executable, child.pid, process, out, started + timeout, rate),
            daemon=True,
        )
        attacher.start()
    try:
        output, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {"error": f"profiling took longer than {timeout:.0f} s"}
    if attacher is not None:
        attacher.join(timeout=30)
    if not out.exists():
        last = (output.strip().splitlines() or ["no output"])[-1]
        return {"error": f"py-spy wrote nothing: {last}"}
    summary = summarise(out.read_text(errors="replace"))
    summary["command"] = " ".join(command)
    summary["subprocesses"] = sampler is not None
    summary["scope"] = scope
    summary["exit_code"] = child.returncode
    return summary


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces: the fields after it are fixed.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _is_descendant(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid > 1 and seen < 64:
        if pid == ancestor:
            return True
        parent = _parent_pid(pid)
        if parent is None:
            return False
        pid, seen = parent, seen + 1
    return False


def _find_descendant(root: int, needle: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == root:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and _is_descendant(int(entry.name), root):
            return int(entry.name)
    return None


def _attach_to_descendant(
    executable: str, root: int, needle: str, out: Path, deadline: float, rate: int
) -> None:
    """Wait for root's descendant running `needle`, then sample it until it exits."""
    while time.monotonic() < deadline:
        pid = _find_descendant(root, needle)
        if pid is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(
                    [executable, "record", "--pid", str(pid), "--format", "raw", "--rate",
                     str(rate), "--nonblocking", "-o", str(out)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=max(1.0, deadline - time.monotonic()),
                    check=False,
                )  # fmt: skip
            return
        if _parent_pid(root) is None:  # the command has ended
            return
        time.sleep(0.05)


@contextmanager
def profiled_phase() -> Iterator[None]:
    """Sample this process (and its children) with py-spy while the block runs.

    Does nothing unless BENCH_PROFILE_OUT names the file to write, which the
    orchestrator sets when it profiles a part that missed its target.
    """
    out = os.environ.get(PROFILE_ENV)
    executable = py_spy()
    if not out or executable is None:
        yield
        return
    recorder = subprocess.Popen(
        [
            executable,
            "record",
            "--pid",
            str(os.getpid()),
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--subprocesses",
            "--nonblocking",
            "-o",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # attached before the phase starts
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
