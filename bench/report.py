"""Turn bench/results/latest.json into docs/benchmarks.md, its charts and the README table.

    python -m bench.report [--results bench/results/latest.json] [--docs docs] [--readme README.md]

Everything written here is generated: edit this module, not its output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, read_json
from bench.common_targets import Verdict, judge, measured_parts
from bench.report_charts import draw_charts
from bench.report_sections import NOT_MEASURED, SECTIONS, machine_label, num, table

ROOT = Path(__file__).resolve().parent.parent
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def verdict_table(verdicts: Sequence[Verdict], context: bool) -> str:
    mark = {True: "met", False: "**missed**", None: "not measured"}
    headers = ["benchmark", "target", "measured", "verdict", "margin"]
    rows = [[v.title, v.target, v.measured, mark[v.met], v.margin or "-"] for v in verdicts]
    if context:
        headers.append("context")
        rows = [[*row, v.note] for row, v in zip(rows, verdicts, strict=True)]
    return table(headers, rows)


def readme_table(results: dict[str, Any]) -> str:
    """The headline table for the README: targets, measurements, verdicts."""
    return (
        verdict_table(judge(measured_parts(results)), context=False)
        + f"\n\nMeasured by `{results.get('command')}` ({results.get('mode')} run, "
        f"{results.get('finished_at')}) on {machine_label(results.get('machine') or {})}; "
        "details in [docs/benchmarks.md](docs/benchmarks.md)."
    )


def replace_between_markers(text: str, content: str) -> str:
    """Swap what lies between the bench markers; everything else stays byte for byte."""
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {README_START} and {README_END} were not found in order")
    return f"{text[: start + len(README_START)]}\n{content}\n{text[end:]}"


def render_markdown(results: dict[str, Any], images: dict[str, str]) -> str:
    parts = measured_parts(results)
    machine = results.get("machine") or {}
    data = next((p["data"] for p in parts.values() if p.get("data")), "")
    seconds = sum(part.get("seconds") or 0 for part in (results.get("parts") or {}).values())
    lines = [
        "# Benchmarks",
        "",
        "Generated from `bench/results/latest.json` by `python -m bench.report`; run "
        "`make bench-quick` (about 3 minutes) or `make bench` (full sizes) to measure again. "
        "Do not edit by hand.",
        "",
        f"Run: `{results.get('command')}` ({results.get('mode')}), finished "
        f"{results.get('finished_at')}; its parts took {num(seconds)} s in all.",
        "",
        f"**Absolute numbers come from one machine: {machine_label(machine)}.** Every "
        "comparison was measured side by side in the same run against the same real "
        "PostgreSQL and Redis servers, so the ratios are the numbers to carry to other machines.",
        "",
        *([f"Data: {data}.", ""] if data else []),
        "## Headlines",
        "",
        verdict_table(judge(parts), context=True),
        "",
        "To see where a part spends its time, run its script under a sampling profiler, e.g. "
        "`py-spy record --subprocesses -o read.svg -- python -m bench.read_path --customers "
        "5000 --duration 3 --rounds 1`.",
    ]
    for title, name, section in SECTIONS:
        lines += ["", f"## {title}", ""]
        lines += section(parts[name], images) if name in parts else [NOT_MEASURED]
    libraries = ", ".join(f"{k} {v}" for k, v in (machine.get("libraries") or {}).items() if v)
    rows = [
        ["CPU", f"{machine.get('cpu_model')} ({machine.get('cpu_cores')} cores)"],
        ["memory", f"{machine.get('memory_gib')} GiB"],
        ["kernel / OS", f"{machine.get('kernel')} / {machine.get('os')}"],
        ["Python", f"{machine.get('python')} ({machine.get('python_implementation')})"],
        *(
            [label, str(machine.get(key))]
            for label, key in (
                ("Redis server", "redis_server"),
                ("PostgreSQL server", "postgres_server"),
                ("wrk", "wrk"),
                ("psycopg implementation", "psycopg_implementation"),
            )
        ),
        ["libraries", libraries],
    ]
    runs = [
        [name, p.get("status", "?"), num(p.get("seconds"), 1), p.get("error", "")]
        for name, p in (results.get("parts") or {}).items()
    ]
    lines += ["", "## Machine", "", table(["", ""], rows)]
    lines += ["", "## Parts of this run", "", table(["part", "status", "seconds", "error"], runs)]
    return "\n".join(lines) + "\n"


def generate(results_path: Path, docs_dir: Path, readme: Path | None) -> list[Path]:
    """Write the report, its charts and (when markers exist) the README table."""
    results = read_json(results_path)
    images = draw_charts(measured_parts(results), results.get("machine") or {}, docs_dir / "img")
    report = docs_dir / "benchmarks.md"
    report.write_text(render_markdown(results, images))
    written = [report, *(docs_dir / path for path in images.values())]
    if readme is not None:
        try:
            readme.write_text(replace_between_markers(readme.read_text(), readme_table(results)))
            written.append(readme)
        except (OSError, ValueError) as error:
            print(f"README not updated: {error}", file=sys.stderr)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    if not args.results.exists():
        parser.error(f"{args.results} does not exist; run python -m bench.run first")
    for path in generate(args.results, args.docs, args.readme):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
