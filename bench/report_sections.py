"""The tables of docs/benchmarks.md, one section per part, and their number formatting.

Each section takes its part's JSON (what the part's script wrote) and the charts drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ENDPOINT_LABELS = {
    "ours": "our endpoint (`GET /api/customers/{id}`)",
    "ours_via_fastapi": "our endpoint with its fast path off (FastAPI routing)",
    "bare": "bare FastAPI, constant JSON",
    "hgetall": "FastAPI + Redis HGETALL",
    "postgres": "FastAPI + PostgreSQL COUNT/SUM",
}
NOT_MEASURED = "_Not measured in this run._"


def num(value: Any, digits: int = 0, unit: str = "") -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return f"{value:,.{digits}f} {unit}".rstrip()


def times(numerator: Any, denominator: Any) -> str:
    """numerator / denominator as "2.50x", or "-" when either is missing."""
    if not all(isinstance(v, int | float) for v in (numerator, denominator)) or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}x"


def rank(known: list[str], name: str) -> int:
    """Known names in their order, any others after them."""
    return known.index(name) if name in known else len(known)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def cells(row: dict[str, Any], columns: Sequence[tuple[str, int]]) -> list[str]:
    """The row's values under `columns` (key, decimals), formatted."""
    return [num(row.get(key), digits) for key, digits in columns]


def machine_label(machine: dict[str, Any]) -> str:
    """One line naming where absolute numbers came from."""
    return (
        f"{machine.get('cpu_model', 'unknown CPU')}, {machine.get('cpu_cores')} cores, "
        f"{machine.get('memory_gib')} GiB, Linux {machine.get('kernel', '?')}, "
        f"Python {machine.get('python', '?')}"
    )


def read_section(read: dict[str, Any], images: dict[str, str]) -> list[str]:
    endpoints = read.get("endpoints") or {}
    bare = (endpoints.get("bare") or {}).get("rps")
    order = list(ENDPOINT_LABELS)
    rows = [
        [
            ENDPOINT_LABELS.get(name, name),
            num(e.get("rps")),
            times(e.get("rps"), bare),
            num(e.get("p50_ms"), 2),
            num(e.get("p99_ms"), 2),
            num(e.get("non_2xx", 0)),
        ]
        for name, e in sorted(endpoints.items(), key=lambda item: rank(order, item[0]))
    ]
    parts = [
        f"wrk, {read.get('connections')} connections, random ids over "
        f"{num(read.get('customers'))} customers, {read.get('duration_s')} s per run; every "
        "endpoint is one uvicorn worker process.",
        "",
        table(["endpoint", "req/s", "vs bare FastAPI", "p50 ms", "p99 ms", "non-2xx"], rows),
    ]
    if any(e.get("non_2xx") for e in endpoints.values()):
        parts += ["", "**Some responses were not 2xx: those rates do not measure a served read.**"]
    columns = [("connections", 0), ("rps", 0), ("p50_ms", 2), ("p99_ms", 2)]
    sweep = [cells(row, columns) for row in read.get("sweep") or []]
    if sweep:
        parts += ["", "Our endpoint by number of connections:", ""]
        parts.append(table(["connections", "req/s", "p50 ms", "p99 ms"], sweep))
    if "read_throughput" in images:
        parts += ["", f"![Throughput vs connections]({images['read_throughput']})"]
    return parts


def projection_section(projection: dict[str, Any], images: dict[str, str]) -> list[str]:
    sizes = projection.get("sizes") or []
    rows = [
        [
            num(r.get("events")),
            num(r.get("ours_eps")),
            num(r.get("baseline_eps")),
            times(r.get("ours_eps"), r.get("baseline_eps")),
            num(r.get("raw_eps")),
            times(r.get("ours_eps"), r.get("raw_eps")),
            num(r.get("peak_rss_mb"), 0, "MB"),
        ]
        for r in sizes
    ]
    headers = ["events", "ours events/s", "ProjectionRunner events/s", "ours vs runner",
               "raw notification reads/s", "ours vs raw reads", "peak RSS"]  # fmt: skip
    parts = [f"Event store: {projection.get('store')}. {projection.get('method', '')}", ""]
    parts.append(table(headers, rows))
    if "projection_rate" in images:
        parts += ["", f"![Projection events/s vs store size]({images['projection_rate']})"]
    return parts


def rebuild_section(rebuild: dict[str, Any], _: dict[str, str]) -> list[str]:
    row = [num(rebuild.get("events")), num(rebuild.get("seconds"), 1, "s"), num(rebuild.get("eps"))]
    return [table(["events", "wall time", "events/s"], [row]), "", str(rebuild.get("method", ""))]


def freshness_section(freshness: dict[str, Any], images: dict[str, str]) -> list[str]:
    stores = {name: v for name, v in freshness.items() if isinstance(v, dict)}
    headers = ["event store", "asked orders/s", "written orders/s", "writes observed",
               "p50 ms", "p90 ms", "p99 ms", "max ms"]  # fmt: skip
    columns = [("rate_per_s", 0), ("achieved_per_s", 0), ("count", 0), ("p50_ms", 1),
               ("p90_ms", 1), ("p99_ms", 1), ("max_ms", 1)]  # fmt: skip
    rows = [[name, *cells(values, columns)] for name, values in stores.items()]
    parts = [
        "Producers place orders at a steady rate through the write path while a reader "
        "notes when the projector announces each write's position as applied in Redis.",
        "",
        table(headers, rows),
    ]
    for name, v in stores.items():
        asked, achieved = v.get("rate_per_s") or 0, v.get("achieved_per_s") or 0
        if achieved < 0.9 * asked:
            parts += [
                "",
                f"**{name}: the producers reached {achieved:,.0f} of the "
                f"{asked:,.0f} orders/s asked; its latencies are for that lower rate.**",
            ]
        if v.get("never_visible"):
            parts += ["", f"**{name}: {v['never_visible']} writes were never seen.**"]
        if v.get("all_writes_in_read_model") is False:
            parts += ["", f"**{name}: the read model's order count does not match the writes.**"]
        parts += [
            "",
            f"{name}: projector {v.get('projector')}; producers: "
            f"{v.get('producer_processes')} process(es), {v.get('producer_threads')} "
            f"threads each; {num(v.get('writes'))} writes, the first second not counted.",
        ]
    if "freshness_distribution" in images:
        parts += ["", f"![Commit-to-visible latency]({images['freshness_distribution']})"]
    return parts


def write_section(write: dict[str, Any], _: dict[str, str]) -> list[str]:
    http, saves = write.get("http_orders_per_s"), write.get("in_process_saves_per_s")
    batched = write.get("save_batched") or {}
    threaded = (write.get("service_place_order_in_process") or {}).get("orders_per_s")
    rows = [
        ["orders over HTTP (`POST /api/orders`)", num(http), times(http, saves)],
        ["library in-process `Application.save`, one order per call", num(saves), "1.00x"],
        [
            f"library in-process `Application.save`, {batched.get('orders_per_call')} orders "
            "per call (the ceiling batching can approach)",
            num(batched.get("orders_per_s")),
            times(batched.get("orders_per_s"), saves),
        ],
        [
            "in-process `CustomerService.place_order`, a thread per order (no HTTP)",
            num(threaded),
            times(threaded, saves),
        ],
    ]
    columns = [("connections", 0), ("orders_per_s", 0), ("p50_ms", 2), ("p99_ms", 2),
               ("server_cpu_ms_per_order", 3)]  # fmt: skip
    sweep = [cells(row, columns) for row in write.get("http_sweep") or []]
    parts = [table(["path", "orders/s", "vs one order per save"], rows), ""]
    parts += ["Orders over HTTP by number of connections (the headline is the best):", ""]
    parts += [table(["connections", "orders/s", "p50 ms", "p99 ms", "server CPU ms/order"], sweep)]
    parts += ["", f"Event store: {write.get('store')}."]
    other = (write.get("http") or {}).get("other_statuses")
    if other:
        parts.append(f"Responses other than 201: {other}.")
    return parts


def memory_section(memory: dict[str, Any], _: dict[str, str]) -> list[str]:
    ours, naive = memory.get("ours_bytes"), memory.get("naive_bytes")
    layout1 = memory.get("v1_bytes")
    rows = [
        ["layout 2: 16 customers per hash, fields <= 64 B", num(ours, 1), times(ours, naive)],
        ["layout 1: a hash per customer, JSON record", num(layout1, 1), times(layout1, naive)],
        ["naive: a hash per customer, 15 contract fields", num(naive, 1), "1.00x"],
    ]
    share = memory.get("listpack_share")
    return [
        f"`MEMORY USAGE ... SAMPLES 0` summed over every key and divided by "
        f"{num(memory.get('customers'))} customers projected by our projector (layout 2's "
        f"{num(memory.get('checkpoint_keys'))} partition checkpoints included); layout 1 and "
        "the naive hashes hold the same documents.",
        "",
        table(["layout", "bytes per customer", "vs naive"], rows),
        "",
        f"Layout 2 keeps every field within `hash-max-listpack-value` "
        f"({memory.get('hash_max_listpack_value')} here), so its buckets stay listpacks "
        f"({num(share * 100 if share is not None else None, 1)}% of those sampled); layout 1's "
        f"record, about 210 bytes in one field, made each of its hashes a "
        f"`{memory.get('v1_encoding')}`, which costs a dict entry and an object per field.",
    ]


def cluster_section(cluster: dict[str, Any], _: dict[str, str]) -> list[str]:
    projection, reads = cluster.get("projection") or {}, cluster.get("reads") or {}
    rows = []
    for name, label in (
        ("single", "one Valkey"),
        ("cluster", f"Valkey Cluster: {cluster.get('cluster')}"),
    ):
        done, served = projection.get(name) or {}, reads.get(name) or {}
        rows.append([
            label, num(done.get("eps")), num(done.get("cpu_ms_per_1k_events"), 1),
            num(served.get("rps")), num(served.get("p50_ms"), 2), num(served.get("p99_ms"), 2),
        ])  # fmt: skip
    return [
        f"The same {num(cluster.get('events'))} events ({num(cluster.get('customers'))} sample "
        "customers, SQLite store) projected by our projector into one Valkey and into a "
        "cluster of the same binary on this machine, then read through `customers read-api` "
        f"with wrk at {cluster.get('connections')} connections (interleaved rounds, median).",
        "",
        table(
            [
                "read model",
                "projection events/s",
                "projector CPU ms per 1k events",
                "reads req/s",
                "p50 ms",
                "p99 ms",
            ],
            rows,
        ),
        "",
        f"Cluster vs one node: reads {cluster.get('read_ratio')}x, projection "
        f"{cluster.get('projection_ratio')}x. On two cores the cluster's six server processes "
        "share the CPU with the service and wrk, which one server does not.",
    ]


def workers_section(workers: dict[str, Any], _: dict[str, str]) -> list[str]:
    rows = [
        [f"`customers project` x{r.get('workers')}", num(r.get("eps")), num(r.get("seconds"), 2),
         num(r.get("cpu_ms_per_1k_events"), 1) + " ms per 1k events"]
        for r in workers.get("projection") or []
    ] + [
        [f"`customers rebuild --workers {r.get('workers')}`", num(r.get("eps")),
         num(r.get("seconds"), 2), num(r.get("cpu_seconds"), 2) + " s in all"]
        for r in workers.get("rebuild") or []
    ]  # fmt: skip
    faults = workers.get("takeover") or []
    takeovers = ", ".join(f"{num(t.get('seconds'), 2)} s after {t.get('fault')}" for t in faults)
    return [
        f"{num(workers.get('events'))} events ({num(workers.get('customers'))} sample customers) "
        "on PostgreSQL, projected from nothing by real worker processes sharing the 16 slices "
        "through PostgreSQL, into one Redis; wall from the first worker's start to every "
        "slice at the head, CPU the workers' own.",
        "",
        table(["run", "events/s", "wall s", "CPU"], rows),
        "",
        f"Two workers vs one: wall {workers.get('projection_wall_ratio')}x as fast, CPU per "
        f"event {workers.get('projection_cpu_ratio')}x; rebuild "
        f"{workers.get('rebuild_wall_ratio')}x as fast. Each worker reads and decodes the "
        "whole log and applies its share, so CPU per event grows with workers; they gain "
        "wall time only where cores are spare (on two cores Redis, PostgreSQL and one "
        "projector already use both). Takeover, one of two workers faulted while catching "
        f"up: {takeovers}.",
    ]


SECTIONS = (
    ("Read path", "read", read_section),
    ("Projection", "projection", projection_section),
    ("Rebuild", "rebuild", rebuild_section),
    ("Freshness: commit to visible", "freshness", freshness_section),
    ("Write path", "write", write_section),
    ("Memory", "memory", memory_section),
    ("Redis Cluster", "cluster", cluster_section),
    ("Projector workers", "workers", workers_section),
)
