"""The targets from the issues, judged against each part's own results.

`parts` maps a part's name to the JSON its script wrote (bench/results/latest.json keeps
them under parts.<name>.result); the judges read, for instance:

    read:       {"connections": 32, "endpoints": {name: {"rps", "p50_ms", "p99_ms"}}, ...}
    projection: {"sizes": [{"events", "ours_eps", "baseline_eps", "raw_eps", ...}]}
    rebuild:    {"events", "seconds", "eps"}
    freshness:  {store: {"rate_per_s", "achieved_per_s", "p50_ms", "p99_ms", ...}}
    write:      {"http_orders_per_s", "in_process_saves_per_s", ...}
    memory:     {"customers", "ours_bytes", "naive_bytes", ...}
    hostile:    {"quiet": {"p50_ms", "p99_ms", "rps"}, "hostile": {...}, "p99_ratio",
                 "peak_rss_mb", "read_timeouts", "hostile_requests": {"sent", ...}, ...}

Any part may be missing (not run, or failed); its targets are then "not measured".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

REBUILD_EVENTS = 1_000_000


@dataclass(frozen=True)
class Verdict:
    """One target: what was measured against what was asked, and by how much it missed."""

    key: str
    title: str
    target: str
    measured: str
    met: bool | None  # None: not measured in this run
    margin: str  # how far over or under the target, in words
    part: str  # the part (benchmark) the number came from
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(parts: dict[str, Any], *path: str | int) -> Any:
    node: Any = parts
    for step in path:
        if isinstance(node, dict) and isinstance(step, str):
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int) and -len(node) <= step < len(node):
            node = node[step]
        else:
            return None
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _at_least(value: float, target: float) -> tuple[bool, str]:
    if value >= target:
        return True, f"{value / target:.2f}x the target"
    return False, f"{(1 - value / target) * 100:.0f}% short ({value / target:.2f}x the target)"


def _at_most(value: float, target: float) -> tuple[bool, str]:
    if value <= target:
        return True, f"{(1 - value / target) * 100:.0f}% under the limit"
    return False, f"{(value / target - 1) * 100:.0f}% over the limit ({value / target:.2f}x)"


def _missing(key: str, title: str, target: str, part: str) -> Verdict:
    return Verdict(key, title, target, "not measured", None, "", part)


def read_vs_bare(parts: dict[str, Any]) -> Verdict:
    # The edge-hardening issue's bar: at least as fast as before its work, 3.0x.
    key, title, target, part = "read_vs_bare", "Read throughput vs bare FastAPI", ">= 3.0x", "read"
    ours = _number(_get(parts, "read", "endpoints", "ours", "rps"))
    bare = _number(_get(parts, "read", "endpoints", "bare", "rps"))
    if ours is None or bare is None or bare == 0:
        return _missing(key, title, target, part)
    value = ours / bare
    met, margin = _at_least(value, 3.0)
    connections = _get(parts, "read", "connections") or 32
    note = f"{ours:,.0f} vs {bare:,.0f} req/s at {connections} connections"
    return Verdict(key, title, target, f"{value:.2f}x", met, margin, part, note)


def read_p99(parts: dict[str, Any]) -> Verdict:
    key, title, target, part = "read_p99", "Read p99 latency at 32 connections", "<= 5 ms", "read"
    p99 = _number(_get(parts, "read", "endpoints", "ours", "p99_ms"))
    if p99 is None:
        return _missing(key, title, target, part)
    met, margin = _at_most(p99, 5.0)
    return Verdict(key, title, target, f"{p99:.2f} ms", met, margin, part)


def _largest_projection(parts: dict[str, Any]) -> dict[str, Any] | None:
    sizes = [s for s in _get(parts, "projection", "sizes") or [] if isinstance(s, dict)]
    measured = [s for s in sizes if _number(s.get("ours_eps")) is not None]
    if not measured:
        return None
    return max(measured, key=lambda s: s.get("events") or 0)


def projection_rate(parts: dict[str, Any]) -> Verdict:
    key, title, part = "projection_eps", "Projection rate", "projection"
    target = ">= 40,000 events/s"
    row = _largest_projection(parts)
    if row is None:
        return _missing(key, title, target, part)
    eps = float(row["ours_eps"])
    met, margin = _at_least(eps, 40_000)
    note = f"at {row.get('events', 0):,} events"
    return Verdict(key, title, target, f"{eps:,.0f} events/s", met, margin, part, note)


def projection_vs_baseline(parts: dict[str, Any]) -> Verdict:
    key, title = "projection_vs_baseline", "Projection vs library ProjectionRunner"
    target, part = ">= 10x", "projection"
    row = _largest_projection(parts)
    baseline = _number(row.get("baseline_eps")) if row else None
    if row is None or baseline is None or baseline == 0:
        return _missing(key, title, target, part)
    value = float(row["ours_eps"]) / baseline
    met, margin = _at_least(value, 10.0)
    note = f"{float(row['ours_eps']):,.0f} vs {baseline:,.0f} events/s at {row.get('events', 0):,}"
    return Verdict(key, title, target, f"{value:.1f}x", met, margin, part, note)


def rebuild_time(parts: dict[str, Any]) -> Verdict:
    key, title, target, part = "rebuild_1m", "Rebuild of 1M events", "<= 30 s", "rebuild"
    events = _number(_get(parts, "rebuild", "events"))
    seconds = _number(_get(parts, "rebuild", "seconds"))
    if not events or seconds is None:
        return _missing(key, title, target, part)
    estimate = seconds * REBUILD_EVENTS / events
    met, margin = _at_most(estimate, 30.0)
    if events >= 0.999 * REBUILD_EVENTS:  # a million, give or take a customer's events
        note = f"{events:,.0f} events, {events / seconds:,.0f} events/s"
        return Verdict(key, title, target, f"{seconds:.1f} s", met, margin, part, note)
    note = f"estimated from {events:,.0f} events in {seconds:.1f} s (linear)"
    return Verdict(key, title, target, f"~{estimate:.1f} s", met, margin, part, note)


def freshness_p99(parts: dict[str, Any]) -> Verdict:
    key, title = "freshness_p99_postgres", "Commit-to-visible p99 on PostgreSQL"
    target, part = "<= 50 ms", "freshness"
    p99 = _number(_get(parts, "freshness", "postgres", "p99_ms"))
    if p99 is None:
        return _missing(key, title, target, part)
    met, margin = _at_most(p99, 50.0)
    rate = _number(_get(parts, "freshness", "postgres", "achieved_per_s"))
    note = f"while writing {rate:,.0f} orders/s" if rate is not None else ""
    return Verdict(key, title, target, f"{p99:.1f} ms", met, margin, part, note)


def bytes_per_customer(parts: dict[str, Any]) -> Verdict:
    key, title, part = "bytes_per_customer", "Redis bytes per customer", "memory"
    ours = _number(_get(parts, "memory", "ours_bytes"))
    naive = _number(_get(parts, "memory", "naive_bytes"))
    layout1 = _number(_get(parts, "memory", "v1_bytes"))
    target = "<= 250 B"
    if ours is None or naive is None:
        return _missing(key, title, target, part)
    met, margin = _at_most(ours, 250.0)
    before = f"layout 1: {layout1:.0f} B; " if layout1 is not None else ""
    note = f"{before}naive one-hash layout: {naive:.0f} B"
    return Verdict(key, title, target, f"{ours:.0f} B", met, margin, part, note)


def http_orders(parts: dict[str, Any]) -> Verdict:
    key, title, target, part = "http_orders", "Orders over HTTP", ">= 2,000 orders/s", "write"
    rate = _number(_get(parts, "write", "http_orders_per_s"))
    if rate is None:
        return _missing(key, title, target, part)
    met, margin = _at_least(rate, 2_000)
    saves = _number(_get(parts, "write", "in_process_saves_per_s"))
    note = f"library in-process save: {saves:,.0f}/s" if saves is not None else ""
    return Verdict(key, title, target, f"{rate:,.0f} orders/s", met, margin, part, note)


def _hostile_note(parts: dict[str, Any]) -> str:
    sent = _number(_get(parts, "hostile", "hostile_requests", "sent"))
    if sent is None:
        return ""
    statuses = _get(parts, "hostile", "hostile_requests", "by_status") or {}
    listed = ", ".join(f"{status}: {count:,}" for status, count in statuses.items())
    proper = _get(parts, "hostile", "hostile_requests", "all_refused_or_closed")
    verdict = "all 4xx JSON or closed" if proper else "NOT all 4xx JSON or closed"
    return f"{sent:,.0f} hostile requests ({listed}), {verdict}"


def hostile_read_p99(parts: dict[str, Any]) -> Verdict:
    key, title = "hostile_read_p99", "Read p99 under hostile clients vs quiet"
    target, part = "<= 1.5x", "hostile"
    value = _number(_get(parts, "hostile", "p99_ratio"))
    quiet = _number(_get(parts, "hostile", "quiet", "p99_ms"))
    hostile = _number(_get(parts, "hostile", "hostile", "p99_ms"))
    if value is None or quiet is None or hostile is None:
        return _missing(key, title, target, part)
    met, margin = _at_most(value, 1.5)
    note = f"p99 {hostile:.2f} vs {quiet:.2f} ms quiet; {_hostile_note(parts)}"
    timeouts = _number(_get(parts, "hostile", "read_timeouts", "hostile")) or 0
    if timeouts:  # wrk leaves timed-out reads out of its percentiles: p99 understates
        met, note = False, f"{note}; {timeouts:,.0f} reads timed out"
    return Verdict(key, title, target, f"{value:.2f}x", met, margin, part, note)


def hostile_peak_rss(parts: dict[str, Any]) -> Verdict:
    key, title = "hostile_peak_rss", "Server peak RSS under hostile clients"
    target, part = "< 200 MB", "hostile"
    peak = _number(_get(parts, "hostile", "peak_rss_mb"))
    if peak is None:
        return _missing(key, title, target, part)
    met = peak < 200.0
    _, margin = _at_most(peak, 200.0)
    quiet = _number(_get(parts, "hostile", "quiet_peak_rss_mb"))
    note = "VmRSS sampled every 100 ms" + (f"; {quiet:.0f} MB in the quiet run" if quiet else "")
    return Verdict(key, title, target, f"{peak:.0f} MB", met, margin, part, note)


def cluster_reads(parts: dict[str, Any]) -> Verdict:
    key, title = "cluster_reads", "Reads through a Redis Cluster vs one node"
    target, part = ">= 0.8x", "cluster"
    value = _number(_get(parts, "cluster", "read_ratio"))
    cluster = _number(_get(parts, "cluster", "reads", "cluster", "rps"))
    single = _number(_get(parts, "cluster", "reads", "single", "rps"))
    if value is None or cluster is None or single is None:
        return _missing(key, title, target, part)
    met, margin = _at_least(value, 0.8)
    note = f"{cluster:,.0f} vs {single:,.0f} req/s at 32 connections, same Valkey binary"
    return Verdict(key, title, target, f"{value:.2f}x", met, margin, part, note)


JUDGES: tuple[Callable[[dict[str, Any]], Verdict], ...] = (
    read_vs_bare,
    read_p99,
    projection_rate,
    projection_vs_baseline,
    rebuild_time,
    freshness_p99,
    bytes_per_customer,
    http_orders,
    hostile_read_p99,
    hostile_peak_rss,
    cluster_reads,
)


def measured_parts(results: dict[str, Any]) -> dict[str, Any]:
    """Each part that ran to the end in a run's results, by name: its JSON."""
    parts = results.get("parts") or {}
    return {name: part["result"] for name, part in parts.items() if part.get("status") == "ok"}


def judge(parts: dict[str, Any]) -> list[Verdict]:
    """Every target, in the issue's order."""
    return [verdict(parts) for verdict in JUDGES]
