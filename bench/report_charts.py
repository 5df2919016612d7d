"""The report's charts (PNG, matplotlib): read throughput and latency, projection rate,
commit-to-visible latency distribution. Drawn only for the parts a run measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tail_position(quantile: float) -> float:
    """Where a quantile sits on a tail-spreading axis; the maximum is drawn past 99.99%."""
    return 1.0 / (1.0 - min(quantile, 0.9999))


def draw_charts(parts: dict[str, Any], machine: dict[str, Any], img_dir: Path) -> dict[str, str]:
    """Returns chart name -> its path relative to the report's folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report_sections import machine_label

    img_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        fig.text(0.01, 0.01, machine_label(machine), fontsize=6, color="grey")
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(img_dir / f"{name}.png", dpi=90)
        plt.close(fig)
        written[name] = f"{img_dir.name}/{name}.png"

    read = parts.get("read") or {}
    if sweep := read.get("sweep"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
        connections = [row["connections"] for row in sweep]
        left.plot(connections, [row.get("rps") or 0 for row in sweep], marker="o", label="ours")
        for name, marker in (("bare", "x"), ("hgetall", "^"), ("postgres", "s")):
            rps = ((read.get("endpoints") or {}).get(name) or {}).get("rps")
            if isinstance(rps, int | float):
                left.plot(
                    [read.get("connections", 32)],
                    [rps],
                    marker=marker,
                    linestyle="none",
                    label=name,
                )
        left.legend(fontsize=7)
        left.set(
            xscale="log",
            xlabel="connections",
            ylabel="requests/s",
            title="Throughput (baselines at their headline point)",
        )
        right.plot(connections, [row.get("p50_ms") or 0 for row in sweep], marker="o", label="p50")
        right.plot(connections, [row.get("p99_ms") or 0 for row in sweep], marker="o", label="p99")
        right.set(xscale="log", xlabel="connections", ylabel="ms", title="Latency")
        right.legend()
        for axis in (left, right):
            axis.set_xticks(connections, [str(c) for c in connections])
        save(fig, "read_throughput")

    if sizes := (parts.get("projection") or {}).get("sizes"):
        fig, axis = plt.subplots(figsize=(7, 3.8))
        for key, name in (
            ("raw_eps", "raw notification reads"),
            ("ours_eps", "our projector"),
            ("baseline_eps", "library ProjectionRunner"),
        ):
            points = [(row["events"], row.get(key)) for row in sizes]
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

    freshness = parts.get("freshness") or {}
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
