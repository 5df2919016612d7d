"""Every benchmark in one invocation, side by side, then the report.

    python -m bench.run --quick     about 2 minutes: small sizes, short runs
    python -m bench.run --full      the sizes the issues name (1M events ...), about 15 minutes

Each part runs as its own process (so one part's memory and threads never colour another's)
and writes its JSON into bench/results/. This module gathers them with a description of the
machine into bench/results/latest.json (and <mode>.json), judges the targets, profiles the
parts that missed one with py-spy while time allows, and regenerates docs/benchmarks.md,
its charts and the README table. Servers: BENCH_POSTGRES_URL and BENCH_REDIS_URL, else the
local defaults; every part uses fresh databases and key prefixes and removes them.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, read_json, unreachable_servers, write_json
from bench.common_machine import describe_machine
from bench.common_normalise import NORMALISERS
from bench.common_profile import profile_command
from bench.common_targets import judge
from bench.hostile import normalise as normalise_hostile

ROOT = Path(__file__).resolve().parent.parent
LOGS = RESULTS_DIR / "logs"
PART_RESULTS = RESULTS_DIR / "parts"  # each part's own JSON; latest.json carries them all
PROFILES = RESULTS_DIR / "profiles"
NORMALISERS.setdefault("hostile", normalise_hostile)  # its shape lives beside its script
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Plan:
    """One part in one mode: its arguments, its time bound, and a small profiling variant."""

    args: list[str]
    timeout: float
    profile_args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Part:
    name: str
    module: str
    quick: Plan
    full: Plan
    smoke: Plan
    needs_wrk: bool = False
    # Profiling a miss: the script samples only its measured phase (bench.common_profile.
    # profiled_phase), or else the whole run is sampled, kept to processes running this.
    phase_profile: bool = False
    profile_process: str | None = None
    not_profiled_because: str = ""

    def plan(self, mode: str) -> Plan:
        return {"quick": self.quick, "full": self.full, "smoke": self.smoke}[mode]

    def output(self) -> Path:
        return PART_RESULTS / f"{self.name}.json"

    def command(self, args: Sequence[str], out: Path) -> list[str]:
        """The part's command line, run from the repository root (paths kept relative)."""
        return [sys.executable, "-m", self.module, *args, "--out", str(out.relative_to(ROOT))]


def plan_of(args: str, timeout: float, profile: str = "") -> Plan:
    return Plan(args.split(), timeout, profile.split())


# Sizes and durations per mode. Quick keeps the whole run under three minutes on two cores;
# full uses the sizes the issues name.
PARTS: tuple[Part, ...] = (
    Part(
        "read",
        "bench.read_path",
        quick=plan_of(
            "--customers 20000 --duration 2 --rounds 2 --connections 1,8,32,128",
            timeout=75,
            profile="--customers 5000 --duration 3 --rounds 1 --connections 32",
        ),
        full=plan_of(
            "--customers 100000 --duration 6 --rounds 2 --connections 1,8,32,128",
            timeout=300,
            profile="--customers 20000 --duration 5 --rounds 1 --connections 32",
        ),
        smoke=plan_of("--customers 500 --duration 1 --rounds 1 --connections 8,32", 60),
        needs_wrk=True,
        profile_process="read-api",
    ),
    Part(
        "projection",
        "bench.projection",
        quick=plan_of(
            "--sizes 10000,30000 --baseline-max 4000",
            timeout=60,
            profile="--sizes 30000 --baseline-max 500",
        ),
        full=plan_of(
            "--sizes 10000,100000,1000000 --baseline-max 5000",
            timeout=360,
            profile="--sizes 300000 --baseline-max 1000",
        ),
        smoke=plan_of("--sizes 2000 --baseline-max 500", 60),
        profile_process="--worker ours",
    ),
    Part(
        "rebuild",
        "bench.common_rebuild",
        quick=plan_of("--events 60000", timeout=45, profile="--events 60000"),
        full=plan_of("--events 1000000", timeout=240, profile="--events 200000"),
        smoke=plan_of("--events 3000", 30),
        phase_profile=True,
    ),
    Part(
        "freshness",
        "bench.freshness",
        quick=plan_of(
            "--seconds 6 --rate 1000 --threads 16",
            timeout=50,
            profile="--seconds 5 --stores postgres",
        ),
        full=plan_of(
            "--seconds 20 --rate 1000 --threads 16",
            timeout=120,
            profile="--seconds 10 --stores postgres",
        ),
        smoke=plan_of("--seconds 2 --rate 200", 40),
        profile_process="--projector",
    ),
    Part(
        "write",
        "bench.write_throughput",
        quick=plan_of("--duration 3", timeout=45, profile="--duration 3 --connections 256"),
        full=plan_of("--duration 12", timeout=120, profile="--duration 8 --connections 256"),
        smoke=plan_of("--duration 1", 40),
        profile_process="write-api",
    ),
    Part(
        "memory",
        "bench.memory",
        quick=plan_of("--customers 10000", timeout=40),
        full=plan_of("--customers 100000", timeout=180),
        smoke=plan_of("--customers 300", 30),
        not_profiled_because="a CPU profile cannot explain bytes; the encodings above do",
    ),
    Part(
        "hostile",
        "bench.hostile",
        quick=plan_of(
            "--customers 2000 --duration 10 --rounds 1",
            timeout=60,
            profile="--customers 1000 --duration 5 --rounds 1",
        ),
        full=plan_of(
            "--customers 20000 --duration 20 --rounds 2",
            timeout=180,
            profile="--customers 5000 --duration 10 --rounds 1",
        ),
        smoke=plan_of("--customers 300 --duration 2 --rounds 1 --slowloris 10", 40),
        needs_wrk=True,
        profile_process="customers serve",
    ),
)

# The whole run's budget (smoke shares quick's); profiling misses only runs in what is left.
QUICK_BUDGET_SECONDS = 200.0
FULL_BUDGET_SECONDS = 1020.0


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def run_part(part: Part, mode: str, deadline: float) -> dict[str, Any]:
    """Run one part's script; its JSON and a status line come back."""
    plan = part.plan(mode)
    out = part.output()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    command = part.command(plan.args, out)
    timeout = max(5.0, min(plan.timeout, deadline - time.monotonic()))
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{part.name}.log"
    started = time.monotonic()
    status: dict[str, Any] = {"command": " ".join(["python", *command[1:]])}
    try:
        with log_path.open("w") as sink:
            completed = subprocess.run(
                command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout
            )
        code: int | None = completed.returncode
    except subprocess.TimeoutExpired:
        code = None
    status["seconds"] = round(time.monotonic() - started, 1)
    output = log_path.read_text(errors="replace")
    if code is None:
        status.update(status="failed", error=f"stopped after {timeout:.0f} s")
    elif code != 0:
        status.update(status="failed", error=last_line(output) or f"exit code {code}")
    elif not out.exists():
        status.update(status="failed", error=f"wrote no {out.name}")
    else:
        status.update(status="ok", raw=read_json(out))
    return status


def summarise_parts(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The normalised summary the targets and the report read (see bench/common_targets)."""
    summary: dict[str, Any] = {}
    for name, part in parts.items():
        if part.get("status") != "ok":
            continue
        normalise: Callable[[dict[str, Any]], dict[str, Any]] | None = NORMALISERS.get(name)
        if normalise is None:
            continue
        try:
            fragment = normalise(part["raw"])
        except (KeyError, TypeError, ValueError) as error:
            part["status"] = "unreadable"
            part["error"] = f"its JSON lacks what the report needs: {error!r}"
            continue
        summary.update(fragment)
    return summary


def profile_missed(
    parts_by_name: dict[str, Part], summary: dict[str, Any], mode: str, deadline: float
) -> dict[str, Any]:
    """Re-run each part that missed a target, smaller, under py-spy, while time allows."""
    profiles: dict[str, Any] = {}
    missed_parts = []
    for verdict in judge(summary):
        if verdict.met is False and verdict.part not in missed_parts:
            missed_parts.append(verdict.part)
    for name in missed_parts:
        part = parts_by_name.get(name)
        if part is None:
            continue
        if part.not_profiled_because:
            profiles[name] = {"skipped": part.not_profiled_because}
            continue
        plan = part.plan(mode)
        remaining = deadline - time.monotonic()
        if remaining < plan.timeout * 0.5 + 10:
            profiles[name] = {
                "skipped": f"only {remaining:.0f} s of the run's time budget were left"
            }
            log(f"profile {name}: skipped, {remaining:.0f} s left")
            continue
        out = PROFILES / f"{name}.json"
        command = part.command(plan.profile_args or plan.args, out)
        log(f"profile {name}: {' '.join(command[1:])}")
        summary_of_profile = profile_command(
            command,
            PROFILES / f"{name}.collapsed.txt",
            timeout=min(plan.timeout, remaining - 5),
            process=part.profile_process,
            phase_only=part.phase_profile,
            cwd=ROOT,
        )
        summary_of_profile["command"] = " ".join(["python", *command[1:]])
        profiles[name] = summary_of_profile
    return profiles


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode_group = parser.add_mutually_exclusive_group()
    mode_group.add_argument("--quick", action="store_const", dest="mode", const="quick")
    mode_group.add_argument("--full", action="store_const", dest="mode", const="full")
    mode_group.add_argument(
        "--smoke",
        action="store_const",
        dest="mode",
        const="smoke",
        help="tiny sizes to check the wiring; writes smoke.json only, no report",
    )
    parser.add_argument("--only", default="", help="comma-separated parts, e.g. read,memory")
    parser.add_argument("--no-profile", action="store_true", help="skip profiling misses")
    parser.add_argument("--no-report", action="store_true", help="skip docs and README")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: replace just those parts in this mode's last results",
    )
    args = parser.parse_args(argv)
    mode = args.mode or "quick"
    names = [n.strip() for n in args.only.split(",") if n.strip()] or [p.name for p in PARTS]
    by_name = {part.name: part for part in PARTS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        print(
            f"error: unknown part {unknown[0]!r}; parts are {', '.join(by_name)}", file=sys.stderr
        )
        return 2
    selected = [by_name[name] for name in names]
    if any(part.needs_wrk for part in selected) and shutil.which("wrk") is None:
        print(
            "error: wrk is not installed; install it (apt-get install -y wrk) and run again",
            file=sys.stderr,
        )
        return 2
    problems = unreachable_servers()
    if problems:
        print(f"error: {problems[0]}; set BENCH_POSTGRES_URL / BENCH_REDIS_URL", file=sys.stderr)
        return 2

    started_at = datetime.now(UTC)
    began = time.monotonic()
    budget = FULL_BUDGET_SECONDS if mode == "full" else QUICK_BUDGET_SECONDS
    deadline = began + budget
    log(f"{mode} run: {', '.join(names)} (budget {budget:.0f} s)")
    machine = describe_machine()
    parts: dict[str, dict[str, Any]] = {}
    for part in selected:
        log(f"{part.name}: {' '.join(part.plan(mode).args)}")
        parts[part.name] = run_part(part, mode, deadline)
        state = parts[part.name]
        log(f"{part.name}: {state['status']} in {state['seconds']} s {state.get('error', '')}")
    previous: dict[str, Any] = {}
    if args.merge and (RESULTS_DIR / f"{mode}.json").exists():
        previous = read_json(RESULTS_DIR / f"{mode}.json")
        parts = {**previous.get("parts", {}), **parts}
    summary = summarise_parts(parts)
    verdicts = judge(summary)
    selected_by_name = {part.name: part for part in selected}
    profiles = {} if args.no_profile else profile_missed(selected_by_name, summary, mode, deadline)
    if previous:
        kept = {k: v for k, v in previous.get("profiles", {}).items() if k not in names}
        profiles = {**kept, **{k: v for k, v in profiles.items() if k in names}}
    finished_at = datetime.now(UTC)
    command = f"python -m bench.run --{mode}" + (f" --only {args.only}" if args.only else "")
    if previous:
        command = f"{previous.get('command', '?')}, then {command} --merge"
    results = {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "command": command,
        "started_at": previous.get("started_at") or started_at.isoformat(timespec="seconds"),
        "finished_at": finished_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began + previous.get("duration_s", 0), 1),
        "machine": machine,
        "summary": summary,
        "verdicts": [verdict.as_dict() for verdict in verdicts],
        "profiles": profiles,
        "parts": parts,
    }
    latest = write_json(RESULTS_DIR / f"{mode}.json", results)
    if mode != "smoke":
        latest = write_json(RESULTS_DIR / "latest.json", results)
    log(f"wrote {latest.relative_to(ROOT)}")
    for verdict in verdicts:
        mark = {True: "met", False: "MISSED", None: "not measured"}[verdict.met]
        log(f"  {verdict.title}: {verdict.measured} (target {verdict.target}) {mark}")
    if not args.no_report and mode != "smoke":
        from bench.report import generate

        for path in generate(latest, ROOT / "docs", ROOT / "README.md"):
            log(f"wrote {path.relative_to(ROOT)}")
    log(f"done in {time.monotonic() - began:.0f} s")
    failed = [name for name, part in parts.items() if part.get("status") != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
