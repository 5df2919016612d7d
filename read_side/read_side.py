"""The read side's live parts for one process: link, cached state, reader and metrics."""

from __future__ import annotations

from projections.read_model import Keys
from read_side.api import CustomerReader
from read_side.metrics import RequestMetrics
from read_side.projection_state import DEFAULT_UPSTREAM, ProjectionState
from read_side.redis_link import RedisLink


class ReadSide:
    """Built once per app; started and stopped by the app's lifespan."""

    def __init__(
        self,
        redis_url: str,
        keys: Keys,
        *,
        min_position_wait: float = 2.0,
        upstream: str = DEFAULT_UPSTREAM,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.keys = keys
        self.link = RedisLink(redis_url)
        self.state = ProjectionState(self.link, keys, redis_url=redis_url, upstream=upstream)
        self.reader = CustomerReader(
            self.link, self.state, keys, min_position_wait=min_position_wait
        )
        self.metrics = metrics or RequestMetrics()
        self.last_head: int | None = None
        self.started = False
        self.metrics.gauge(
            "projection_position",
            "Event store position the read model has applied",
            lambda: self.state.position,
        )
        self.metrics.gauge(
            "projection_generation", "Read model generation being served",
            lambda: self.state.generation,
        )  # fmt: skip
        self.metrics.gauge(
            "projection_lag_events",
            "Event store head minus applied position, as of the last readiness check",
            lambda: (
                None if self.last_head is None else max(self.last_head - self.state.position, 0)
            ),
        )

    async def start(self) -> None:
        await self.state.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self.state.stop()
        await self.link.close()
