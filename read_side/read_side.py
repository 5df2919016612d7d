"""The read side's live parts for one process: link, cached state, reader and metrics."""

from __future__ import annotations

from contract.application import APPLICATION_NAME
from projections.read_model import Keys
from read_side.cluster_link import ClusterAwareLink
from read_side.customer_reader import CustomerReader
from read_side.metrics import RequestMetrics
from read_side.projection_state import ProjectionState


class ReadSide:
    """Built once per app; started and stopped by the app's lifespan."""

    def __init__(
        self,
        redis_url: str,
        keys: Keys,
        *,
        min_position_wait: float = 2.0,
        upstream: str = APPLICATION_NAME,
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.keys = keys
        self.link = ClusterAwareLink(redis_url)
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
            "Event store head minus applied position (the head as the projector last saw it)",
            self.lag,
        )
        self.metrics.gauge(
            "projector_up",
            "1 while a projector renews its heartbeat (every second), else 0",
            lambda: 0 if self.state.projector is None else 1,
        )
        self.metrics.gauge(
            "projection_dead_letters",
            "Poison events the projection stopped at that no operator has skipped yet",
            lambda: self.state.dead_letters,
        )
        self.metrics.gauge(
            "read_model_repairing",
            "1 while Redis is being repaired after losing data (reads answer 503), else 0",
            lambda: 0 if self.state.trouble is None else 1,
        )

    def lag(self) -> int | None:
        """Events the read model is behind the store, by the freshest head known here."""
        heads = [self.last_head] if self.last_head is not None else []
        if self.state.projector is not None and self.state.projector.get("head", "").isdigit():
            heads.append(int(self.state.projector["head"]))
        return max(max(heads) - self.state.position, 0) if heads else None

    async def start(self) -> None:
        await self.state.start()
        self.started = True

    async def stop(self) -> None:
        self.started = False
        await self.state.stop()
        await self.link.close()
