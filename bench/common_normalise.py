"""Each part's own JSON -> the summary the targets and the report read.

The part scripts are written and owned separately, each with the output that suits it;
these functions are the one place that knows their shapes. A missing key raises KeyError,
which the orchestrator reports as an unreadable part instead of guessing a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Normaliser = Callable[[dict[str, Any]], dict[str, Any]]


def read(raw: dict[str, Any]) -> dict[str, Any]:
    """bench/read_path.py: endpoints at the headline connection count, and the sweep."""
    endpoints = {
        name: {
            "rps": values["rps"],
            "p50_ms": values.get("p50_ms"),
            "p99_ms": values.get("p99_ms"),
            "non_2xx": values.get("non_2xx", 0),
        }
        for name, values in raw["endpoints"].items()
    }
    sweep = [
        {key: row.get(key) for key in ("connections", "rps", "p50_ms", "p99_ms", "non_2xx")}
        for row in raw.get("sweep", [])
    ]
    return {
        "read": {
            "connections": raw.get("connections", 32),
            "customers": raw.get("customers"),
            "duration_s": raw.get("duration_s"),
            "endpoints": endpoints,
            "sweep": sweep,
        }
    }


def projection(raw: dict[str, Any]) -> dict[str, Any]:
    """bench/projection.py: ours, the library baseline and raw reads per store size."""
    keys = ("events", "ours_eps", "baseline_eps", "baseline_events", "raw_eps", "peak_rss_mb")
    sizes = [{key: row.get(key) for key in keys} for row in raw["sizes"]]
    for row in sizes:
        if row["events"] is None or row["ours_eps"] is None:
            raise KeyError("events / ours_eps")
    return {
        "projection": {
            "store": raw.get("store", "PostgreSQL"),
            "page_size": raw.get("page_size"),
            "method": raw.get("method"),
            "sizes": sizes,
        }
    }


_SWEEP_KEYS = ("connections", "orders_per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_order")


def write(raw: dict[str, Any]) -> dict[str, Any]:
    """bench/write_throughput.py: orders/s over HTTP beside the library's save rate."""
    http = raw.get("http") or {}
    return {
        "write": {
            "http_orders_per_s": float(raw["http_orders_per_s"]),
            "in_process_saves_per_s": float(raw["in_process_saves_per_s"]),
            "store": raw.get("store"),
            "connections": http.get("connections"),
            "p50_ms": http.get("p50_ms"),
            "p99_ms": http.get("p99_ms"),
            "other_statuses": http.get("other_statuses") or {},
            "server_cpu_ms_per_order": http.get("server_cpu_ms_per_order"),
            "sweep": [
                {key: run.get(key) for key in _SWEEP_KEYS} for run in raw.get("http_sweep") or []
            ],
            "batched_saves_per_s": _batched_saves(raw),
            "in_process_place_order_per_s": (raw.get("service_place_order_in_process") or {}).get(
                "orders_per_s"
            ),
        }
    }


def _batched_saves(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The library's save rate with many orders per call (save_<N>_orders_per_call)."""
    for key, value in raw.items():
        match = re.fullmatch(r"save_(\d+)_orders_per_call", key)
        if match and isinstance(value, dict):
            return {"orders_per_call": int(match[1]), "orders_per_s": value.get("saves_per_s")}
    return None


def freshness(raw: dict[str, Any]) -> dict[str, Any]:
    stores = {
        store: {key: value for key, value in raw[store].items()}
        for store in ("postgres", "sqlite")
        if isinstance(raw.get(store), dict)
    }
    if not stores:
        raise KeyError("postgres or sqlite")
    return {"freshness": stores}


def memory(raw: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "customers",
        "ours_bytes",
        "naive_bytes",
        "ours_encoding",
        "naive_encoding",
        "hash_max_listpack_value",
        "mean_d_field_bytes",
    )
    fragment = {key: raw.get(key) for key in keys}
    for required in ("customers", "ours_bytes", "naive_bytes"):
        if fragment[required] is None:
            raise KeyError(required)
    return {"memory": fragment}


def rebuild(raw: dict[str, Any]) -> dict[str, Any]:
    events, seconds = int(raw["events"]), float(raw["seconds"])
    fragment = {
        "events": events,
        "seconds": seconds,
        "eps": round(events / seconds) if seconds else None,
        "store": raw.get("store"),
        "method": raw.get("method"),
    }
    return {"rebuild": fragment}


NORMALISERS: dict[str, Normaliser] = {
    "read": read,
    "projection": projection,
    "write": write,
    "freshness": freshness,
    "memory": memory,
    "rebuild": rebuild,
}
