"""Each part's own JSON becomes the one summary the targets and the report read."""

from __future__ import annotations

from typing import Any

from bench.common_normalise import NORMALISERS
from bench.run import summarise_parts

READ_RAW: dict[str, Any] = {
    "customers": 20000,
    "duration_s": 2,
    "connections": 32,
    "endpoints": {
        "ours": {"connections": 32, "rps": 9000.0, "p50_ms": 3.0, "p99_ms": 4.0, "non_2xx": 0},
        "bare": {"connections": 32, "rps": 3000.0, "p50_ms": 9.0, "p99_ms": 20.0, "non_2xx": 0},
    },
    "sweep": [{"connections": 1, "rps": 2000.0, "p50_ms": 0.4, "p99_ms": 1.0, "non_2xx": 0}],
    "all_rounds": {"ours": []},
}
PROJECTION_RAW: dict[str, Any] = {
    "store": "PostgreSQL",
    "page_size": 5000,
    "sizes": [
        {"events": 30000, "ours_eps": 50000, "raw_eps": 90000, "baseline_eps": 1500,
         "baseline_events": 4000, "peak_rss_mb": 70.0, "rss_mb": {"start": 60}},
    ],
}  # fmt: skip
WRITE_RAW: dict[str, Any] = {
    "http_orders_per_s": 2100.0,
    "in_process_saves_per_s": 2600.0,
    "store": "PostgreSQL",
    "http": {"connections": 64, "p50_ms": 20.0, "p99_ms": 60.0, "other_statuses": {}},
}


def test_read_results_keep_endpoints_and_the_connection_sweep() -> None:
    read = NORMALISERS["read"](READ_RAW)["read"]
    assert read["endpoints"]["ours"] == {"rps": 9000.0, "p50_ms": 3.0, "p99_ms": 4.0, "non_2xx": 0}
    assert read["sweep"][0]["connections"] == 1
    assert "all_rounds" not in read


def test_projection_rows_keep_the_three_rates_and_memory() -> None:
    row = NORMALISERS["projection"](PROJECTION_RAW)["projection"]["sizes"][0]
    assert row == {
        "events": 30000,
        "ours_eps": 50000,
        "baseline_eps": 1500,
        "baseline_events": 4000,
        "raw_eps": 90000,
        "peak_rss_mb": 70.0,
    }


def test_write_results_keep_both_rates_and_the_http_latencies() -> None:
    write = NORMALISERS["write"](WRITE_RAW)["write"]
    assert write["http_orders_per_s"] == 2100.0
    assert write["in_process_saves_per_s"] == 2600.0
    assert write["p99_ms"] == 60.0


def test_write_results_keep_the_connection_sweep_and_the_batched_save_ceiling() -> None:
    raw = {
        **WRITE_RAW,
        "http_sweep": [
            {"connections": 64, "orders_per_s": 2000.0, "server_cpu_ms_per_order": 0.2},
            {"connections": 256, "orders_per_s": 2100.0, "socket_errors": None},
        ],
        "save_64_orders_per_call": {"saves": 640, "saves_per_s": 7000.0},
        "service_place_order_in_process": {"orders_per_s": 1800.0},
    }
    write = NORMALISERS["write"](raw)["write"]
    assert [run["connections"] for run in write["sweep"]] == [64, 256]
    assert write["sweep"][0]["server_cpu_ms_per_order"] == 0.2
    assert "socket_errors" not in write["sweep"][1]
    assert write["batched_saves_per_s"] == {"orders_per_call": 64, "orders_per_s": 7000.0}
    assert write["in_process_place_order_per_s"] == 1800.0


def test_write_results_of_an_older_run_have_no_sweep_or_ceiling() -> None:
    write = NORMALISERS["write"](WRITE_RAW)["write"]
    assert write["sweep"] == []
    assert write["batched_saves_per_s"] is None


def test_rebuild_rate_is_derived_from_events_and_seconds() -> None:
    rebuild = NORMALISERS["rebuild"]({"events": 60000, "seconds": 1.5})["rebuild"]
    assert rebuild["eps"] == 40000


def test_a_part_whose_json_lacks_a_needed_key_is_marked_unreadable_not_guessed() -> None:
    parts: dict[str, dict[str, Any]] = {
        "read": {"status": "ok", "raw": READ_RAW},
        "write": {"status": "ok", "raw": {"http": {}}},
        "memory": {"status": "failed", "error": "exit code 1"},
    }
    summary = summarise_parts(parts)
    assert set(summary) == {"read"}
    assert parts["write"]["status"] == "unreadable"
    assert "http_orders_per_s" in parts["write"]["error"]
    assert parts["memory"]["status"] == "failed"
