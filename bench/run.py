"""Every benchmark in one invocation, side by side, then the report.

    python -m bench.run --quick     small sizes, short runs: about 3 minutes on two cores
    python -m bench.run --full      the sizes the issues name (1M events ...): 20 minutes or so
    python -m bench.run --quick --only read,memory    just those parts again; the others
                                                      keep this mode's last results

Each part runs as its own process (so one part's memory and threads never colour another's)
and writes its JSON. This module gathers them, with a description of the machine and the
targets' verdicts, into bench/results/<mode>.json and latest.json, and regenerates
docs/benchmarks.md, its charts and the README table from that. Servers: BENCH_POSTGRES_URL
and BENCH_REDIS_URL, else the local defaults; every part uses fresh databases and key
prefixes and removes them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, read_json, unreachable_servers, write_json
from bench.common_machine import describe_machine
from bench.common_targets import judge, measured_parts
from bench.report import generate

ROOT = Path(__file__).resolve().parent.parent
LOGS = RESULTS_DIR / "logs"  # each part's output, for reading a failure
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Part:
    """One benchmark script, its arguments per mode, and how long it may take at most."""

    name: str
    module: str
    quick: str
    full: str
    timeout: tuple[float, float]  # seconds: quick, full
    needs_wrk: bool = False

    def args(self, mode: str) -> list[str]:
        return (self.quick if mode == "quick" else self.full).split()


# Quick keeps the whole run near three minutes on two cores; full uses the issues' sizes.
# The sample has about 6.4 events per customer: quick reads 10,000 customers (~64k events).
PARTS: tuple[Part, ...] = (
    Part("read", "bench.read_path",
         quick="--customers 10000 --duration 2 --rounds 2 --connections 1,8,32,128",
         full="--customers 100000 --duration 6 --rounds 2 --connections 1,8,32,128",
         timeout=(120, 480), needs_wrk=True),
    Part("projection", "bench.projection",
         quick="--sizes 10000,30000 --baseline-max 4000",
         full="--sizes 10000,100000,1000000 --baseline-max 5000", timeout=(90, 480)),
    Part("rebuild", "bench.rebuild",
         quick="--events 60000", full="--events 1000000", timeout=(60, 300)),
    Part("freshness", "bench.freshness",
         quick="--seconds 6 --rate 1000 --threads 16",
         full="--seconds 20 --rate 1000 --threads 16", timeout=(90, 180)),
    Part("write", "bench.write_throughput",
         quick="--duration 3", full="--duration 12", timeout=(90, 180), needs_wrk=True),
    Part("memory", "bench.memory",
         quick="--customers 10000", full="--customers 100000", timeout=(60, 360)),
    Part("hostile", "bench.hostile",
         quick="--customers 2000 --duration 10 --rounds 1",
         full="--customers 20000 --duration 20 --rounds 2", timeout=(90, 240), needs_wrk=True),
    Part("cluster", "bench.cluster",
         quick="--customers 5000 --duration 2 --rounds 2",
         full="--customers 50000 --duration 6 --rounds 2", timeout=(120, 360), needs_wrk=True),
    Part("workers", "bench.workers",
         quick="--customers 10000", full="--customers 100000", timeout=(120, 480)),
)  # fmt: skip


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def run_part(part: Part, mode: str, folder: Path) -> dict[str, Any]:
    """Run one part's script; a status line, and its JSON when it succeeded."""
    out = folder / f"{part.name}.json"
    command = [sys.executable, "-m", part.module, *part.args(mode), "--out", str(out)]
    timeout = part.timeout[mode == "full"]
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{part.name}.log"
    started = time.monotonic()
    status: dict[str, Any] = {"command": " ".join(["python", "-m", part.module, *part.args(mode)])}
    try:
        with log_path.open("w") as sink:
            code = subprocess.run(
                command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
    except subprocess.TimeoutExpired:
        code = None
    status["seconds"] = round(time.monotonic() - started, 1)
    if code == 0 and out.exists():
        return {**status, "status": "ok", "result": read_json(out)}
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines()]
    last = next((line for line in reversed(lines) if line), "")[:300]
    if code is None:
        error = f"stopped after {timeout:.0f} s"
    elif code != 0:
        error = last or f"exit code {code}"
    else:
        error = f"wrote no {out.name}"
    return {**status, "status": "failed", "error": error}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode_group = parser.add_mutually_exclusive_group()
    mode_group.add_argument("--quick", action="store_const", dest="mode", const="quick")
    mode_group.add_argument("--full", action="store_const", dest="mode", const="full")
    parser.add_argument(
        "--only", default="", help="comma-separated parts, e.g. read,memory; others kept"
    )
    args = parser.parse_args(argv)
    mode = args.mode or "quick"
    by_name = {part.name: part for part in PARTS}
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; parts are {', '.join(by_name)}")
    selected = [by_name[name] for name in names]
    if any(part.needs_wrk for part in selected) and shutil.which("wrk") is None:
        print("error: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    problems = unreachable_servers()
    if problems:
        print(f"error: {problems[0]}; set BENCH_POSTGRES_URL / BENCH_REDIS_URL", file=sys.stderr)
        return 2

    started_at = datetime.now(UTC)
    began = time.monotonic()
    log(f"{mode} run: {', '.join(names)}")
    parts: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-run-") as folder:
        for part in selected:
            log(f"{part.name}: {' '.join(part.args(mode))}")
            parts[part.name] = state = run_part(part, mode, Path(folder))
            log(f"{part.name}: {state['status']} in {state['seconds']} s {state.get('error', '')}")
    command = f"python -m bench.run --{mode}" + (f" --only {args.only}" if args.only else "")
    previous = RESULTS_DIR / f"{mode}.json"
    earlier = read_json(previous) if args.only and previous.exists() else {}
    if earlier.get("schema_version") == SCHEMA_VERSION:
        parts = {**earlier["parts"], **parts}
        command = f"{earlier['command']}, then {command}"
    verdicts = judge(measured_parts({"parts": parts}))
    results = {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "command": command,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "machine": describe_machine(),
        "verdicts": [verdict.as_dict() for verdict in verdicts],
        "parts": parts,
    }
    write_json(previous, results)
    latest = write_json(RESULTS_DIR / "latest.json", results)
    for verdict in verdicts:
        mark = {True: "met", False: "MISSED", None: "not measured"}[verdict.met]
        log(f"  {verdict.title}: {verdict.measured} (target {verdict.target}) {mark}")
    for path in generate(latest, ROOT / "docs", ROOT / "README.md"):
        log(f"wrote {path.relative_to(ROOT)}")
    log(f"done in {time.monotonic() - began:.0f} s")
    return 1 if any(part["status"] != "ok" for part in parts.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
