"""Prometheus text exposition for request latency and projection numbers, no dependencies."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    observations: int = 0


@dataclass
class RequestMetrics:
    """A latency histogram per (method, route template, status); cheap enough per request."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[tuple[str, str, int], _Series] = field(default_factory=dict)
    gauges: dict[str, tuple[str, str, Callable[[], float | None]]] = field(default_factory=dict)
    in_flight: int = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, status)
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series([0] * (len(self.buckets) + 1))
        series.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        series.total += seconds
        series.observations += 1

    def gauge(
        self, name: str, help_text: str, read: Callable[[], float | None], kind: str = "gauge"
    ) -> None:
        """Register a number read at scrape time (None: not known, left out)."""
        self.gauges[name] = (help_text, kind, read)

    def render(self) -> bytes:
        return "".join(self._lines()).encode()

    def _lines(self) -> Iterable[str]:
        name = "http_request_duration_seconds"
        yield f"# HELP {name} Time to answer HTTP requests, by route and status.\n"
        yield f"# TYPE {name} histogram\n"
        for (method, route, status), series in sorted(self.series.items()):
            labels = f'method="{method}",route="{_escape(route)}",status="{status}"'
            cumulative = 0
            for bound, count in zip(self.buckets, series.counts, strict=False):
                cumulative += count
                yield f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}\n'
            yield f'{name}_bucket{{{labels},le="+Inf"}} {series.observations}\n'
            yield f"{name}_sum{{{labels}}} {series.total}\n"
            yield f"{name}_count{{{labels}}} {series.observations}\n"
        yield "# HELP http_requests_in_flight Requests being answered right now.\n"
        yield "# TYPE http_requests_in_flight gauge\n"
        yield f"http_requests_in_flight {self.in_flight}\n"
        for gauge_name, (help_text, kind, read) in sorted(self.gauges.items()):
            value = read()
            if value is None:
                continue
            yield f"# HELP {gauge_name} {help_text}\n"
            yield f"# TYPE {gauge_name} {kind}\n"
            yield f"{gauge_name} {value}\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RequestTimer:
    """ASGI middleware: observes every HTTP request's latency by route template and status."""

    def __init__(self, app: Any, metrics: RequestMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self._metrics.in_flight += 1
        try:
            await self._app(scope, receive, timed_send)
        finally:
            self._metrics.in_flight -= 1
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self._metrics.observe(scope["method"], template, status, time.perf_counter() - started)
