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
from bench.common_targets import Verdict, judge

ROOT = Path(__file__).resolve().parent.parent
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"

ENDPOINT_LABELS = {
    "ours": "our endpoint (`GET /api/customers/{id}`)",
    "ours_via_fastapi": "our endpoint with its fast path off (FastAPI routing)",
    "bare": "bare FastAPI, constant JSON",
    "hgetall": "FastAPI + Redis HGETALL",
    "postgres": "FastAPI + PostgreSQL COUNT/SUM",
}


# Formatting


def fmt_number(value: Any, digits: int = 0, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    text = f"{value:,.{digits}f}"
    return f"{text} {unit}".rstrip() if unit else text


def fmt_ratio(numerator: Any, denominator: Any) -> str:
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return "-"
    if denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def verdict_mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def endpoint_order(name: str) -> int:
    """Known endpoints in the order of ENDPOINT_LABELS, any others after them."""
    names = list(ENDPOINT_LABELS)
    return names.index(name) if name in names else len(names)


def machine_label(machine: dict[str, Any]) -> str:
    """One line naming where absolute numbers came from."""
    cores = machine.get("cpu_cores")
    memory = machine.get("memory_gib")
    return (
        f"{machine.get('cpu_model', 'unknown CPU')}, {cores} cores, {memory} GiB, "
        f"Linux {machine.get('kernel', '?')}, Python {machine.get('python', '?')}"
    )


def verdicts_of(results: dict[str, Any]) -> list[Verdict]:
    return judge(results.get("summary") or {})


# The README table


def readme_table(results: dict[str, Any]) -> str:
    """The headline table for the README: targets, measurements, verdicts."""
    rows = [
        [v.title, v.target, v.measured, verdict_mark(v.met), v.margin or "-"]
        for v in verdicts_of(results)
    ]
    machine = results.get("machine") or {}
    lines = [
        table(["benchmark", "target", "measured", "verdict", "margin"], rows),
        "",
        f"Measured by `{results.get('command', 'python -m bench.run')}` "
        f"({results.get('mode', '?')} run, {results.get('finished_at', '?')}) on "
        f"{machine_label(machine)}; details in [docs/benchmarks.md](docs/benchmarks.md).",
    ]
    return "\n".join(lines)


def replace_between_markers(text: str, content: str) -> str:
    """Swap what lies between the bench markers; everything else stays byte for byte."""
    start = text.find(README_START)
    end = text.find(README_END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the markers {README_START} and {README_END} were not found in order")
    head = text[: start + len(README_START)]
    return f"{head}\n{content}\n{text[end:]}"


# Sections of docs/benchmarks.md


def headline_section(results: dict[str, Any]) -> str:
    rows = [
        [v.title, v.target, v.measured, verdict_mark(v.met), v.margin or "-", v.note or ""]
        for v in verdicts_of(results)
    ]
    return table(["benchmark", "target", "measured", "verdict", "margin", "context"], rows)


def machine_section(results: dict[str, Any]) -> str:
    machine = results.get("machine") or {}
    libraries = machine.get("libraries") or {}
    rows = [
        ["CPU", f"{machine.get('cpu_model', '?')} ({machine.get('cpu_cores', '?')} cores)"],
        ["memory", f"{machine.get('memory_gib', '?')} GiB"],
        ["kernel / OS", f"{machine.get('kernel', '?')} / {machine.get('os', '?')}"],
        ["Python", f"{machine.get('python', '?')} ({machine.get('python_implementation', '')})"],
        ["Redis server", str(machine.get("redis_server") or "?")],
        ["PostgreSQL server", str(machine.get("postgres_server") or "?")],
        ["wrk", str(machine.get("wrk") or "?")],
        ["psycopg implementation", str(machine.get("psycopg_implementation") or "?")],
        [
            "libraries",
            ", ".join(f"{name} {version}" for name, version in libraries.items() if version),
        ],
    ]
    return table(["", ""], rows)


def read_section(results: dict[str, Any], images: dict[str, str]) -> str:
    read = (results.get("summary") or {}).get("read")
    if not read:
        return "_Not measured in this run._"
    endpoints = read.get("endpoints") or {}
    bare_rps = (endpoints.get("bare") or {}).get("rps")
    connections = read.get("connections", 32)
    rows = [
        [
            ENDPOINT_LABELS.get(name, name),
            fmt_number(values.get("rps")),
            fmt_ratio(values.get("rps"), bare_rps),
            fmt_number(values.get("p50_ms"), 2),
            fmt_number(values.get("p99_ms"), 2),
            fmt_number(values.get("non_2xx", 0)),
        ]
        for name, values in sorted(endpoints.items(), key=lambda item: endpoint_order(item[0]))
    ]
    parts = [
        f"wrk, {connections} connections, random ids over "
        f"{fmt_number(read.get('customers'))} customers, {read.get('duration_s', '?')} s per run; "
        "every endpoint is one uvicorn worker process.",
        "",
        table(["endpoint", "req/s", "vs bare FastAPI", "p50 ms", "p99 ms", "non-2xx"], rows),
    ]
    if any((values.get("non_2xx") or 0) > 0 for values in endpoints.values()):
        parts += ["", "**Some responses were not 2xx: those rates do not measure a served read.**"]
    sweep = read.get("sweep") or []
    if sweep:
        parts += [
            "",
            "Our endpoint by number of connections:",
            "",
            table(
                ["connections", "req/s", "p50 ms", "p99 ms"],
                [
                    [
                        str(row.get("connections")),
                        fmt_number(row.get("rps")),
                        fmt_number(row.get("p50_ms"), 2),
                        fmt_number(row.get("p99_ms"), 2),
                    ]
                    for row in sweep
                ],
            ),
        ]
    if "read_throughput" in images:
        parts += ["", f"![Throughput vs connections]({images['read_throughput']})"]
    return "\n".join(parts)


def projection_section(results: dict[str, Any], images: dict[str, str]) -> str:
    summary = results.get("summary") or {}
    projection = summary.get("projection")
    parts: list[str] = []
    if projection and projection.get("sizes"):
        rows = [
            [
                fmt_number(row.get("events")),
                fmt_number(row.get("ours_eps")),
                fmt_number(row.get("baseline_eps")),
                fmt_ratio(row.get("ours_eps"), row.get("baseline_eps")),
                fmt_number(row.get("raw_eps")),
                fmt_ratio(row.get("ours_eps"), row.get("raw_eps")),
                fmt_number(row.get("peak_rss_mb"), 0, "MB"),
            ]
            for row in projection["sizes"]
        ]
        baseline_events = {row.get("baseline_events") for row in projection["sizes"]}
        baseline_events.discard(None)
        parts += [
            f"Event store: {projection.get('store', 'PostgreSQL')}. "
            + (str(projection["method"]) if projection.get("method") else "")
            + (
                f" The runner's rate is taken over its first {fmt_number(max(baseline_events))} "
                "events of each store."
                if baseline_events
                else ""
            ),
            "",
            table(
                [
                    "events",
                    "ours events/s",
                    "ProjectionRunner events/s",
                    "ours vs runner",
                    "raw notification reads/s",
                    "ours vs raw reads",
                    "peak RSS",
                ],
                rows,
            ),
        ]
        if "projection_rate" in images:
            parts += ["", f"![Projection events/s vs store size]({images['projection_rate']})"]
    else:
        parts.append("_Projection not measured in this run._")
    rebuild = summary.get("rebuild")
    parts += ["", "### Rebuild", ""]
    if rebuild:
        parts.append(
            table(
                ["events", "wall time", "events/s"],
                [
                    [
                        fmt_number(rebuild.get("events")),
                        fmt_number(rebuild.get("seconds"), 1, "s"),
                        fmt_number(rebuild.get("eps")),
                    ]
                ],
            )
        )
        if rebuild.get("method"):
            parts += ["", str(rebuild["method"])]
    else:
        parts.append("_Rebuild not measured in this run._")
    return "\n".join(parts)


def freshness_section(results: dict[str, Any], images: dict[str, str]) -> str:
    freshness = (results.get("summary") or {}).get("freshness")
    if not freshness:
        return "_Not measured in this run._"
    rows = [
        [
            store,
            fmt_number(values.get("rate_per_s")),
            fmt_number(values.get("achieved_per_s")),
            fmt_number(values.get("count")),
            fmt_number(values.get("p50_ms"), 1),
            fmt_number(values.get("p90_ms"), 1),
            fmt_number(values.get("p99_ms"), 1),
            fmt_number(values.get("max_ms"), 1),
        ]
        for store, values in freshness.items()
        if isinstance(values, dict)
    ]
    parts = [
        table(
            [
                "event store",
                "asked orders/s",
                "written orders/s",
                "writes observed",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
            ],
            rows,
        )
    ]
    for store, values in freshness.items():
        if not isinstance(values, dict):
            continue
        asked, achieved = values.get("rate_per_s"), values.get("achieved_per_s")
        if (
            isinstance(asked, int | float)
            and isinstance(achieved, int | float)
            and achieved < 0.9 * asked
        ):
            parts += [
                "",
                f"**{store}: the producers reached {achieved:,.0f} of the {asked:,.0f} "
                "orders/s asked; its latencies are for that lower rate.**",
            ]
        if values.get("never_visible"):
            parts += ["", f"**{store}: {values['never_visible']} writes were never seen.**"]
        if values.get("all_writes_in_read_model") is False:
            parts += ["", f"**{store}: the read model's order count does not match the writes.**"]
        if values.get("projector"):
            parts += [
                "",
                f"{store}: projector {values['projector']}; producers: "
                f"{values.get('producer_processes', 1)} process(es), "
                f"{values.get('producer_threads', '?')} threads each; "
                f"{fmt_number(values.get('writes'))} writes, the first second not counted.",
            ]
    if "freshness_distribution" in images:
        parts += ["", f"![Commit-to-visible latency]({images['freshness_distribution']})"]
    return "\n".join(parts)


def write_section(results: dict[str, Any]) -> str:
    write = (results.get("summary") or {}).get("write")
    if not write:
        return "_Not measured in this run._"
    http = write.get("http_orders_per_s")
    saves = write.get("in_process_saves_per_s")
    rows = [
        ["orders over HTTP (`POST /api/orders`)", fmt_number(http), fmt_ratio(http, saves)],
        ["library in-process `Application.save`, one order per call", fmt_number(saves), "1.00x"],
    ]
    batched = write.get("batched_saves_per_s")
    if batched:
        rows.append(
            [
                f"library in-process `Application.save`, {batched['orders_per_call']} orders "
                "per call (the ceiling batching can approach)",
                fmt_number(batched["orders_per_s"]),
                fmt_ratio(batched["orders_per_s"], saves),
            ]
        )
    threaded = write.get("in_process_place_order_per_s")
    if threaded:
        rows.append(
            [
                "in-process `CustomerService.place_order`, a thread per order (no HTTP)",
                fmt_number(threaded),
                fmt_ratio(threaded, saves),
            ]
        )
    parts = [table(["path", "orders/s", "vs one order per save"], rows)]
    sweep = write.get("sweep") or []
    if len(sweep) > 1:
        sweep_rows = [
            [
                fmt_number(run.get("connections")),
                fmt_number(run.get("orders_per_s")),
                fmt_number(run.get("p50_ms"), 2),
                fmt_number(run.get("p99_ms"), 2),
                fmt_number(run.get("server_cpu_ms_per_order"), 3),
            ]
            for run in sweep
        ]
        parts += [
            "",
            "Orders over HTTP by number of connections (the headline is the best):",
            "",
            table(
                ["connections", "orders/s", "p50 ms", "p99 ms", "server CPU ms/order"], sweep_rows
            ),
        ]
    details = []
    if write.get("store"):
        details.append(f"Event store: {write['store']}.")
    if write.get("connections"):
        details.append(
            f"HTTP with {write['connections']} keep-alive connections: p50 "
            f"{fmt_number(write.get('p50_ms'), 2)} ms, p99 {fmt_number(write.get('p99_ms'), 2)} ms."
        )
    if write.get("other_statuses"):
        details.append(f"Responses other than 201: {write['other_statuses']}.")
    if details:
        parts += ["", " ".join(details)]
    return "\n".join(parts)


def memory_section(results: dict[str, Any]) -> str:
    memory = (results.get("summary") or {}).get("memory")
    if not memory:
        return "_Not measured in this run._"
    ours, naive = memory.get("ours_bytes"), memory.get("naive_bytes")
    rows = [
        ["our layout (`d` JSON array + `s` + `o`)", fmt_number(ours, 1), fmt_ratio(ours, naive)],
        ["naive: one hash, 15 contract fields", fmt_number(naive, 1), "1.00x"],
    ]
    parts = [
        f"`MEMORY USAGE ... SAMPLES 0` averaged over {fmt_number(memory.get('customers'))} "
        "customers with full profiles, a login and an order each, projected by our projector; "
        "the naive hashes hold the same values as strings.",
        "",
        table(["layout", "bytes per customer", "vs naive"], rows),
        "",
        "(The issue quoted 376 B for one naive hash of its own sample values; the comparison "
        "that counts is the one above, both layouts holding the same values.)",
    ]
    if memory.get("ours_encoding"):
        parts += [
            "",
            f"Redis stores our customer hash as a `{memory['ours_encoding']}` and the naive one "
            f"as a `{memory.get('naive_encoding')}`. The `d` field averages "
            f"{fmt_number(memory.get('mean_d_field_bytes'))} bytes; a hash with a value longer "
            f"than `hash-max-listpack-value` ({memory.get('hash_max_listpack_value')} here) "
            "is kept as a hashtable, which costs a dict entry and an object per field.",
        ]
    return "\n".join(parts)


WAITS = ("Condition.wait ", "Event.wait ", "Connection.wait ", "wait_poll ", "wait_conn ",
         "EpollSelector.select ", "Thread.join ", "Lock.acquire ", "Queue.get ")  # fmt: skip


def waiting_share(rows: Sequence[dict[str, Any]]) -> float:
    """Share of samples (self time) spent in functions that only wait."""
    return float(sum(row["self_pct"] for row in rows if str(row["function"]).startswith(WAITS)))


def profile_section(results: dict[str, Any]) -> str:
    profiles = results.get("profiles") or {}
    missed = [v for v in verdicts_of(results) if v.met is False]
    if not missed:
        return "Every measured target was met; no profile was needed."
    parts: list[str] = []
    for verdict in missed:
        parts += [
            f"**{verdict.title}**: {verdict.measured} against {verdict.target}, {verdict.margin}."
        ]
        profile = profiles.get(verdict.part)
        if not profile:
            parts += ["", "_No profile was recorded for this part in this run._", ""]
            continue
        if profile.get("skipped"):
            parts += ["", f"_Not profiled in this run: {profile['skipped']}._", ""]
            continue
        if profile.get("error"):
            parts += ["", f"_Profiling failed: {profile['error']}_", ""]
            continue
        parts += [
            "",
            f"py-spy, {fmt_number(profile.get('samples'))} samples of "
            f"{profile.get('scope', 'the run')} in `{profile.get('command')}`; "
            "share of samples where the function is running (self) or on the stack (total):",
            "",
            table(
                ["function", "self", "total"],
                [
                    [f"`{row['function']}`", f"{row['self_pct']:.1f}%", f"{row['total_pct']:.1f}%"]
                    for row in profile.get("top", [])
                ],
            ),
        ]
        callers = [
            f"`{row['function']}` {row['total_pct']:.0f}%" for row in profile.get("top_total", [])
        ]
        if callers:
            parts += ["", "On the stack most often (total): " + ", ".join(callers[:6]) + "."]
        if profile.get("reading"):
            parts += ["", str(profile["reading"])]
        waiting = waiting_share(profile.get("top", []))
        if waiting >= 25:
            parts += [
                "",
                f"{waiting:.0f}% of the samples are threads blocked in a wait (locks, "
                "conditions, sockets): the process spends that time waiting on others (the "
                "database's commits, the network or its own worker threads), not computing; "
                "the callers above show what it waits for.",
            ]
        parts.append("")
    return "\n".join(parts).rstrip()


def failures_section(results: dict[str, Any]) -> str:
    rows = [
        [name, part.get("status", "?"), fmt_number(part.get("seconds"), 1), part.get("error", "")]
        for name, part in (results.get("parts") or {}).items()
    ]
    return table(["part", "status", "seconds", "error"], rows)


def render_markdown(results: dict[str, Any], images: dict[str, str]) -> str:
    machine = results.get("machine") or {}
    label = machine_label(machine)
    sections = [
        "# Benchmarks",
        "",
        "Generated from `bench/results/latest.json` by `python -m bench.report`; run "
        "`make bench-quick` (about 2 minutes) or `make bench` (full sizes) to measure again. "
        "Do not edit by hand.",
        "",
        f"Run: `{results.get('command', '?')}` ({results.get('mode', '?')}), finished "
        f"{results.get('finished_at', '?')}, took {fmt_number(results.get('duration_s'), 0)} s.",
        "",
        f"**Absolute numbers come from one machine: {label}.** Every comparison was measured "
        "side by side in the same run against the same real PostgreSQL and Redis servers, so "
        "the ratios are the numbers to carry to other machines.",
        "",
        "## Headlines",
        "",
        headline_section(results),
        "",
        "## Read path",
        "",
        read_section(results, images),
        "",
        "## Projection",
        "",
        projection_section(results, images),
        "",
        "## Freshness: commit to visible",
        "",
        "Producers place orders at a steady rate through the write path while a reader "
        "notes when the projector announces each write's position as applied in Redis.",
        "",
        freshness_section(results, images),
        "",
        "## Write path",
        "",
        write_section(results),
        "",
        "## Memory",
        "",
        memory_section(results),
        "",
        "## Missed targets and what the profiles show",
        "",
        profile_section(results),
        "",
        "## Machine",
        "",
        machine_section(results),
        "",
        "## Parts of this run",
        "",
        failures_section(results),
        "",
    ]
    return "\n".join(sections)


# Charts


def tail_position(quantile: float) -> float:
    """Where a quantile sits on a tail-spreading axis; the maximum is drawn past 99.99%."""
    return 1.0 / (1.0 - min(quantile, 0.9999))


def draw_charts(results: dict[str, Any], img_dir: Path) -> dict[str, str]:
    """PNG charts for the parts that were measured; returns name -> path relative to docs/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    summary = results.get("summary") or {}
    label = machine_label(results.get("machine") or {})
    written: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        fig.text(0.01, 0.01, label, fontsize=6, color="grey")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(img_dir / f"{name}.png", dpi=90)
        plt.close(fig)
        written[name] = f"{img_dir.name}/{name}.png"

    sweep = (summary.get("read") or {}).get("sweep") or []
    if sweep:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        connections = [row["connections"] for row in sweep]
        read = summary.get("read") or {}
        left.plot(connections, [row.get("rps") or 0 for row in sweep], marker="o", label="ours")
        headline = read.get("connections", 32)
        for name, marker in (("bare", "x"), ("hgetall", "^"), ("postgres", "s")):
            rps = ((read.get("endpoints") or {}).get(name) or {}).get("rps")
            if isinstance(rps, int | float):
                left.plot([headline], [rps], marker=marker, linestyle="none", label=name)
        left.legend(fontsize=7)
        left.set(
            xscale="log",
            xlabel="connections",
            ylabel="requests/s",
            title="Throughput (baselines at their headline point)",
        )
        left.set_xticks(connections, [str(c) for c in connections])
        right.plot(connections, [row.get("p50_ms") or 0 for row in sweep], marker="o", label="p50")
        right.plot(connections, [row.get("p99_ms") or 0 for row in sweep], marker="o", label="p99")
        right.set(xscale="log", xlabel="connections", ylabel="ms", title="Latency")
        right.set_xticks(connections, [str(c) for c in connections])
        right.legend()
        save(fig, "read_throughput")

    sizes = (summary.get("projection") or {}).get("sizes") or []
    if sizes:
        fig, axis = plt.subplots(figsize=(7, 3.8))
        events = [row["events"] for row in sizes]
        for key, name in (
            ("raw_eps", "raw notification reads"),
            ("ours_eps", "our projector"),
            ("baseline_eps", "library ProjectionRunner"),
        ):
            points = [(e, row.get(key)) for e, row in zip(events, sizes, strict=True)]
            points = [(e, v) for e, v in points if isinstance(v, int | float)]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=name)
        axis.set(
            xscale="log",
            yscale="log",
            xlabel="events in the store",
            ylabel="events/s",
            title="Projection rate vs store size",
        )
        axis.legend()
        save(fig, "projection_rate")

    freshness = summary.get("freshness") or {}
    curves = {
        store: values["distribution"]
        for store, values in freshness.items()
        if isinstance(values, dict) and values.get("distribution")
    }
    if curves:
        fig, axis = plt.subplots(figsize=(7, 3.8))
        for store, distribution in curves.items():
            # The tail spread out: x is 1 / (1 - quantile), so 90, 99, 99.9% are equally apart.
            points = [(tail_position(q), max(ms, 0.01)) for q, ms in distribution]
            axis.plot(*zip(*points, strict=True), marker=".", label=store)
        axis.axhline(50, color="red", linestyle="--", linewidth=0.8, label="50 ms target")
        ticks = [0.0, 0.5, 0.9, 0.99, 0.999, 1.0]
        axis.set_xscale("log")
        axis.set_xticks(
            [tail_position(q) for q in ticks], ["0%", "50%", "90%", "99%", "99.9%", "max"]
        )
        axis.minorticks_off()
        axis.set(
            yscale="log",
            xlabel="percentile",
            ylabel="commit-to-visible ms",
            title="Latency distribution: commit to visible in Redis",
        )
        axis.legend()
        save(fig, "freshness_distribution")
    return written


def generate(results_path: Path, docs_dir: Path, readme: Path | None) -> list[Path]:
    """Write the report, its charts and (when markers exist) the README table."""
    results = read_json(results_path)
    images = draw_charts(results, docs_dir / "img")
    report = docs_dir / "benchmarks.md"
    report.write_text(render_markdown(results, images))
    written = [report, *(docs_dir / path for path in images.values())]
    if readme is not None and readme.exists():
        text = readme.read_text()
        try:
            readme.write_text(replace_between_markers(text, readme_table(results)))
            written.append(readme)
        except ValueError as error:
            print(f"README not updated: {error}", file=sys.stderr)
    elif readme is not None:
        print(f"README not updated: {readme} does not exist", file=sys.stderr)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR / "latest.json")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    if not args.results.exists():
        print(
            f"error: {args.results} does not exist; run python -m bench.run first", file=sys.stderr
        )
        return 2
    for path in generate(args.results, args.docs, args.readme):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
