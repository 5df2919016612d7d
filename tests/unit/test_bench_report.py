"""The benchmark report is generated from the results JSON, never typed by hand."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench.common_targets import judge, measured_parts
from bench.report import (
    README_END,
    README_START,
    generate,
    readme_table,
    render_markdown,
    replace_between_markers,
)

SAMPLE: dict[str, Any] = {
    "schema_version": 2,
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
    "parts": {
        "read": {
            "status": "ok",
            "seconds": 10.0,
            "result": {
                "connections": 32,
                "customers": 100000,
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
                "data": "sample customers, 6.4 events each",
            },
        },
        "projection": {
            "status": "ok",
            "seconds": 10.0,
            "result": {
                "store": "PostgreSQL",
                "sizes": [
                    {
                        "events": 10000,
                        "ours_eps": 60000.0,
                        "baseline_eps": 3000.0,
                        "raw_eps": 200000.0,
                        "peak_rss_mb": 80.0,
                    },
                    {
                        "events": 100000,
                        "ours_eps": 55000.0,
                        "baseline_eps": 2900.0,
                        "raw_eps": 190000.0,
                        "peak_rss_mb": 95.0,
                    },
                ],
            },
        },
        "rebuild": {
            "status": "ok",
            "seconds": 10.0,
            "result": {"events": 100000, "seconds": 2.5, "eps": 40000.0},
        },
        "freshness": {
            "status": "ok",
            "seconds": 10.0,
            "result": {
                "rate_per_s": 1000,
                "seconds": 10,
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
        },
        "write": {
            "status": "ok",
            "seconds": 10.0,
            "result": {
                "http_orders_per_s": 1500.0,
                "in_process_saves_per_s": 2400.0,
                "save_batched": {"orders_per_call": 64, "orders": 35000, "orders_per_s": 7000.0},
                "service_place_order_in_process": {"orders_per_s": 1800.0},
                "http_sweep": [
                    {
                        "connections": 64,
                        "orders_per_s": 1400.0,
                        "p50_ms": 20.0,
                        "p99_ms": 60.0,
                        "server_cpu_ms_per_order": 0.3,
                    },
                    {
                        "connections": 256,
                        "orders_per_s": 1500.0,
                        "p50_ms": 80.0,
                        "p99_ms": 200.0,
                        "server_cpu_ms_per_order": 0.31,
                    },
                ],
            },
        },
        "memory": {
            "status": "ok",
            "seconds": 10.0,
            "result": {
                "customers": 10000,
                "ours_bytes": 240.0,
                "v1_bytes": 506.0,
                "naive_bytes": 376.0,
            },
        },
        "hostile": {"status": "failed", "seconds": 60.0, "error": "stopped after 60 s"},
    },
}


def verdicts_by_key(parts: dict[str, Any]) -> dict[str, Any]:
    return {verdict.key: verdict for verdict in judge(parts)}


def test_targets_are_judged_as_ratios_and_limits() -> None:
    verdicts = verdicts_by_key(measured_parts(SAMPLE))
    assert verdicts["read_vs_bare"].met is False  # the bar is 3.0x
    assert verdicts["read_vs_bare"].measured == "2.25x"
    assert "25% short" in verdicts["read_vs_bare"].margin
    assert verdicts["read_p99"].met is False
    assert "50% over" in verdicts["read_p99"].margin
    assert verdicts["projection_vs_baseline"].measured == "19.0x"
    assert verdicts["http_orders"].met is False
    assert "25% short" in verdicts["http_orders"].margin
    assert verdicts["bytes_per_customer"].met is True
    assert verdicts["bytes_per_customer"].target == "<= 250 B"
    assert "layout 1: 506 B" in verdicts["bytes_per_customer"].note


def test_projection_targets_use_the_largest_store_measured() -> None:
    verdict = verdicts_by_key(measured_parts(SAMPLE))["projection_eps"]
    assert verdict.measured == "55,000 events/s"
    assert "100,000 events" in verdict.note


def test_a_rebuild_smaller_than_a_million_events_is_marked_as_an_estimate() -> None:
    verdict = verdicts_by_key(measured_parts(SAMPLE))["rebuild_1m"]
    assert verdict.measured == "~25.0 s"
    assert verdict.met is True
    assert "estimated from 100,000 events" in verdict.note


def test_a_part_that_did_not_run_is_not_measured_rather_than_missed() -> None:
    parts = measured_parts(SAMPLE)
    del parts["freshness"]
    verdict = verdicts_by_key(parts)["freshness_p99_postgres"]
    assert verdict.met is None
    assert verdict.measured == "not measured"


def test_report_labels_absolute_numbers_with_the_machine_and_leads_with_ratios() -> None:
    markdown = render_markdown(SAMPLE, images={})
    assert "Example CPU @ 2.50GHz, 2 cores" in markdown
    assert markdown.index("## Headlines") < markdown.index("## Read path")
    assert "| our endpoint (`GET /api/customers/{id}`) | 9,000 | 2.25x |" in markdown
    assert "| 100,000 | 55,000 | 2,900 | 18.97x |" in markdown


def test_readme_table_replaces_only_the_text_between_the_markers() -> None:
    readme = f"# Title\n\nIntro.\n\n{README_START}\nold table\n{README_END}\n\nMore text.\n"
    updated = replace_between_markers(readme, readme_table(SAMPLE))
    assert updated.startswith("# Title\n\nIntro.\n\n" + README_START + "\n| benchmark |")
    assert updated.endswith(README_END + "\n\nMore text.\n")
    assert "old table" not in updated
    assert "| Read throughput vs bare FastAPI | >= 3.0x | 2.25x | **missed** |" in updated
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


def test_a_rebuild_of_a_million_events_give_or_take_one_customer_is_measured() -> None:
    parts = {**measured_parts(SAMPLE), "rebuild": {"events": 999_999, "seconds": 22.6}}
    verdict = verdicts_by_key(parts)["rebuild_1m"]
    assert verdict.measured == "22.6 s"
    assert verdict.note == "999,999 events, 44,248 events/s"


HOSTILE: dict[str, Any] = {
    "quiet": {"rps": 5000.0, "p50_ms": 2.0, "p99_ms": 4.0},
    "hostile": {"rps": 4500.0, "p50_ms": 2.2, "p99_ms": 5.0},
    "p99_ratio": 1.25,
    "read_timeouts": {"quiet": 0, "hostile": 0},
    "peak_rss_mb": 90.0,
    "quiet_peak_rss_mb": 85.0,
    "hostile_requests": {
        "sent": 1000,
        "by_status": {"422": 990, "closed": 10},
        "all_refused_or_closed": True,
    },
}


def test_hostile_targets_read_the_hostile_parts_own_results() -> None:
    verdicts = verdicts_by_key({"hostile": HOSTILE})
    p99 = verdicts["hostile_read_p99"]
    assert (p99.measured, p99.met) == ("1.25x", True)
    assert p99.note == (
        "p99 5.00 vs 4.00 ms quiet; 1,000 hostile requests (422: 990, closed: 10), "
        "all 4xx JSON or closed"
    )
    rss = verdicts["hostile_peak_rss"]
    assert (rss.measured, rss.met) == ("90 MB", True)
    assert "85 MB in the quiet run" in rss.note


def test_reads_timed_out_under_hostile_clients_miss_the_target_whatever_the_p99() -> None:
    hostile = copy.deepcopy(HOSTILE)
    hostile["read_timeouts"]["hostile"] = 3
    verdict = verdicts_by_key({"hostile": hostile})["hostile_read_p99"]
    assert verdict.met is False
    assert verdict.note.endswith("3 reads timed out")


def test_report_tells_what_the_data_holds_and_which_parts_failed() -> None:
    markdown = render_markdown(SAMPLE, images={})
    assert "Data: sample customers, 6.4 events each." in markdown
    assert "| hostile | failed | 60.0 | stopped after 60 s |" in markdown
    assert "its parts took 120 s in all" in markdown
    assert "| Read p99 under hostile clients vs quiet | <= 1.5x | not measured |" in markdown


def test_write_section_sets_http_beside_the_librarys_saves_and_sweeps_connections() -> None:
    section = render_markdown(SAMPLE, images={}).split("## Write path")[1]
    assert "| orders over HTTP (`POST /api/orders`) | 1,500 | 0.62x |" in section
    assert "64 orders per call (the ceiling batching can approach) | 7,000 | 2.92x |" in section
    assert "a thread per order (no HTTP) | 1,800 | 0.75x |" in section
    assert "| 256 | 1,500 | 80.00 | 200.00 | 0.310 |" in section


def test_freshness_rows_are_the_stores_not_the_runs_settings() -> None:
    section = render_markdown(SAMPLE, images={}).split("## Freshness")[1].split("## ")[0]
    assert "| postgres | 1,000 | 998 | 9,000 | 4.0 | 9.0 | 21.0 | 40.0 |" in section
    assert "| sqlite |" in section
    assert "| rate_per_s |" not in section
