"""The benchmark report is generated from the results JSON, never typed by hand."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench.common_targets import judge
from bench.report import (
    README_END,
    README_START,
    generate,
    readme_table,
    render_markdown,
    replace_between_markers,
)

SAMPLE: dict[str, Any] = {
    "schema_version": 1,
    "mode": "quick",
    "command": "python -m bench.run --quick",
    "finished_at": "2026-11-26T22:50:00+00:00",
    "duration_s": 150.0,
    "machine": {
        "cpu_model": "Example CPU @ 2.50GHz",
        "cpu_cores": 2,
        "memory_gib": 23.5,
        "kernel": "6.1.0",
        "python": "3.11.7",
        "libraries": {"eventsourcing": "9.5.6", "redis": "8.1.0"},
        "redis_server": "7.0.15",
        "postgres_server": "15.20",
    },
    "summary": {
        "read": {
            "connections": 32,
            "customers": 100_000,
            "duration_s": 5,
            "endpoints": {
                "ours": {"rps": 9000.0, "p50_ms": 3.1, "p99_ms": 7.5},
                "bare": {"rps": 4000.0, "p50_ms": 7.0, "p99_ms": 12.0},
                "hgetall": {"rps": 2500.0, "p50_ms": 11.0, "p99_ms": 20.0},
                "postgres": {"rps": 900.0, "p50_ms": 30.0, "p99_ms": 80.0},
            },
            "sweep": [
                {"connections": 1, "rps": 2000.0, "p50_ms": 0.4, "p99_ms": 0.9},
                {"connections": 8, "rps": 8000.0, "p50_ms": 0.9, "p99_ms": 2.0},
                {"connections": 32, "rps": 9000.0, "p50_ms": 3.1, "p99_ms": 7.5},
                {"connections": 128, "rps": 8800.0, "p50_ms": 14.0, "p99_ms": 30.0},
            ],
        },
        "projection": {
            "store": "PostgreSQL",
            "sizes": [
                {
                    "events": 10_000,
                    "ours_eps": 60_000.0,
                    "baseline_eps": 3_000.0,
                    "raw_eps": 200_000.0,
                    "peak_rss_mb": 80.0,
                },
                {
                    "events": 100_000,
                    "ours_eps": 55_000.0,
                    "baseline_eps": 2_900.0,
                    "raw_eps": 190_000.0,
                    "peak_rss_mb": 95.0,
                },
            ],
        },
        "rebuild": {"events": 100_000, "seconds": 2.5, "eps": 40_000.0},
        "freshness": {
            "postgres": {
                "rate_per_s": 1000,
                "achieved_per_s": 998.0,
                "count": 9000,
                "p50_ms": 4.0,
                "p90_ms": 9.0,
                "p99_ms": 21.0,
                "max_ms": 40.0,
                "distribution": [[0.0, 1.0], [0.5, 4.0], [0.99, 21.0], [1.0, 40.0]],
            },
            "sqlite": {
                "rate_per_s": 1000,
                "achieved_per_s": 1000.0,
                "count": 9000,
                "p50_ms": 2.0,
                "p90_ms": 5.0,
                "p99_ms": 12.0,
                "max_ms": 30.0,
                "distribution": [[0.0, 0.5], [0.5, 2.0], [0.99, 12.0], [1.0, 30.0]],
            },
        },
        "write": {"http_orders_per_s": 1500.0, "in_process_saves_per_s": 2400.0},
        "memory": {"customers": 10_000, "ours_bytes": 240.0, "naive_bytes": 376.0},
    },
    "profiles": {
        "read": {
            "command": "python -m bench.read_path --duration 3",
            "samples": 1000,
            "subprocesses": True,
            "top": [{"function": "send (uvicorn/h11.py)", "self_pct": 20.0, "total_pct": 25.0}],
            "top_total": [{"function": "app (read_side/api.py)", "total_pct": 70.0}],
            "reading": "Samples by package (self time): uvicorn 40%.",
        },
    },
    "parts": {"read": {"status": "ok", "seconds": 40.0}, "memory": {"status": "ok"}},
}


def verdicts_by_key(summary: dict[str, Any]) -> dict[str, Any]:
    return {verdict.key: verdict for verdict in judge(summary)}


def test_targets_are_judged_as_ratios_and_limits() -> None:
    verdicts = verdicts_by_key(SAMPLE["summary"])
    assert verdicts["read_vs_bare"].met is True
    assert verdicts["read_vs_bare"].measured == "2.25x"
    assert verdicts["read_p99"].met is False
    assert "50% over" in verdicts["read_p99"].margin
    assert verdicts["projection_vs_baseline"].measured == "19.0x"
    assert verdicts["http_orders"].met is False
    assert "25% short" in verdicts["http_orders"].margin
    assert verdicts["bytes_per_customer"].met is True
    assert "stretch met" in verdicts["bytes_per_customer"].note


def test_projection_targets_use_the_largest_store_measured() -> None:
    verdict = verdicts_by_key(SAMPLE["summary"])["projection_eps"]
    assert verdict.measured == "55,000 events/s"
    assert "100,000 events" in verdict.note


def test_a_rebuild_smaller_than_a_million_events_is_marked_as_an_estimate() -> None:
    verdict = verdicts_by_key(SAMPLE["summary"])["rebuild_1m"]
    assert verdict.measured == "~25.0 s"
    assert verdict.met is True
    assert "estimated from 100,000 events" in verdict.note


def test_a_part_that_did_not_run_is_not_measured_rather_than_missed() -> None:
    summary = copy.deepcopy(SAMPLE["summary"])
    del summary["freshness"]
    verdict = verdicts_by_key(summary)["freshness_p99_postgres"]
    assert verdict.met is None
    assert verdict.measured == "not measured"


def test_report_labels_absolute_numbers_with_the_machine_and_leads_with_ratios() -> None:
    markdown = render_markdown(SAMPLE, images={})
    assert "Example CPU @ 2.50GHz, 2 cores" in markdown
    assert markdown.index("## Headlines") < markdown.index("## Read path")
    assert "| our endpoint (`GET /api/customers/{id}`) | 9,000 | 2.25x |" in markdown
    assert "| 100,000 | 55,000 | 2,900 | 18.97x |" in markdown


def test_report_explains_each_missed_target_with_its_profile() -> None:
    markdown = render_markdown(SAMPLE, images={})
    section = markdown.split("## Missed targets and what the profiles show")[1]
    assert "**Read p99 latency at 32 connections**: 7.50 ms against <= 5 ms" in section
    assert "`send (uvicorn/h11.py)`" in section
    assert "uvicorn 40%" in section
    assert "**Orders over HTTP**" in section
    assert "No profile was recorded" in section


def test_readme_table_replaces_only_the_text_between_the_markers() -> None:
    readme = f"# Title\n\nIntro.\n\n{README_START}\nold table\n{README_END}\n\nMore text.\n"
    updated = replace_between_markers(readme, readme_table(SAMPLE))
    assert updated.startswith("# Title\n\nIntro.\n\n" + README_START + "\n| benchmark |")
    assert updated.endswith(README_END + "\n\nMore text.\n")
    assert "old table" not in updated
    assert "| Read throughput vs bare FastAPI | >= 2.0x | 2.25x | met |" in updated
    assert replace_between_markers(updated, readme_table(SAMPLE)) == updated


def test_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        replace_between_markers("# no markers here\n", "table")


def test_generate_writes_the_report_the_charts_and_the_readme(tmp_path: Path) -> None:
    results = tmp_path / "latest.json"
    results.write_text(json.dumps(SAMPLE))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\n{README_END}\n")
    written = generate(results, tmp_path / "docs", readme)
    names = {path.name for path in written}
    assert {"benchmarks.md", "README.md", "read_throughput.png"} <= names
    assert {"projection_rate.png", "freshness_distribution.png"} <= names
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG")
            assert path.stat().st_size < 200_000
    report = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "![Throughput vs connections](img/read_throughput.png)" in report
    assert "| Read throughput vs bare FastAPI |" in readme.read_text()


def test_time_spent_blocked_in_waits_is_told_apart_from_computing() -> None:
    profiled = copy.deepcopy(SAMPLE)
    profiled["profiles"]["write"] = {
        "command": "python -m bench.write_throughput --duration 3",
        "samples": 500,
        "scope": "the process running `write-api`",
        "top": [
            {"function": "Condition.wait (threading.py)", "self_pct": 60.0, "total_pct": 60.0},
            {"function": "Connection.wait (psycopg/connection.py)", "self_pct": 5.0,
             "total_pct": 9.0},
            {"function": "send (uvicorn/h11.py)", "self_pct": 4.0, "total_pct": 4.0},
        ],
    }  # fmt: skip
    section = render_markdown(profiled, images={}).split("**Orders over HTTP**")[1]
    assert "65% of the samples are threads blocked in a wait" in section


def test_a_rebuild_of_a_million_events_give_or_take_one_customer_is_measured() -> None:
    summary = copy.deepcopy(SAMPLE["summary"])
    summary["rebuild"] = {"events": 999_999, "seconds": 22.6, "eps": 44_248}
    verdict = verdicts_by_key(summary)["rebuild_1m"]
    assert verdict.measured == "22.6 s"
    assert verdict.note == "999,999 events, 44,248 events/s"
