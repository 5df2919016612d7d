"""The composition root: settings in, wired stores and services out."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from projections.read_model import Keys
from runtime.event_store import open_customer_service
from runtime.settings import Settings
from write_side.application import CustomerService

# What only serving or projecting needs is imported on first use: the key commands of
# the CLI open the event store alone and start in a fraction of a second.
if TYPE_CHECKING:
    from projections.projector import Projector
    from projections.redis_client import RedisClient
    from runtime.redis_store import EmbeddedRedis, RedisEndpoint
    from write_side.key_directory import KeyDirectory
    from write_side.throughput.order_desk import OrderDesk


@dataclass
class Container:
    """Everything one process needs, built once from Settings and closed once."""

    settings: Settings
    write_service: CustomerService = field(init=False)
    write_keys: KeyDirectory = field(init=False)
    order_desk: OrderDesk = field(init=False)

    def __post_init__(self) -> None:
        from write_side.key_directory import KeyDirectory
        from write_side.throughput.order_desk import OrderDesk

        self.write_service = open_customer_service(self.settings.EVENT_STORE_URL)
        self.write_keys = KeyDirectory(self.write_service)
        self.order_desk = OrderDesk(self.write_service, self.write_keys.may_write)

    # The read model's Redis, started only by start_redis() (write-only processes never need
    # it), then its client and the projector, built on first use.
    _redis_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _redis_endpoint: RedisEndpoint | None = field(init=False, default=None)
    _redis_client: RedisClient | None = field(init=False, default=None)
    _projector: Projector | None = field(init=False, default=None)

    def start_redis(self) -> str:
        """The read model's Redis URL: the configured one, or an embedded Redis started now
        when REDIS_URL is unset (its files in DATA_DIR). Safe to call again."""
        from runtime.redis_store import open_redis

        with self._redis_lock:
            if self._redis_endpoint is None:
                self._redis_endpoint = open_redis(self.settings.REDIS_URL, self.settings.DATA_DIR)
            return self._redis_endpoint.url

    @property
    def embedded_redis(self) -> EmbeddedRedis | None:
        """The Redis this process started itself (REDIS_URL unset), if any."""
        endpoint = self._redis_endpoint
        return None if endpoint is None else endpoint.embedded

    @property
    def redis_keys(self) -> Keys:
        return Keys(self.settings.REDIS_PREFIX)

    @property
    def redis(self) -> RedisClient:
        """A sync client for the projector and the CLI, once start_redis() was called
        (a cluster client if REDIS_URL names a node of a Redis Cluster)."""
        from projections.redis_client import connect

        endpoint = self._redis_endpoint
        if endpoint is None:
            raise RuntimeError("the read model's Redis is not started: call start_redis()")
        url = endpoint.url
        with self._redis_lock:
            if self._redis_client is None:
                self._redis_client = connect(url, socket_timeout=30)
            return self._redis_client

    @property
    def projector(self) -> Projector:
        from projections.projector import Projector

        if self._projector is None:
            self._projector = Projector(self.write_service.recorder, self.redis, self.redis_keys)
        return self._projector

    def close(self) -> None:
        self.order_desk.close()
        self.write_service.close()
        if self._redis_client is not None:
            self._redis_client.close()
        if self._redis_endpoint is not None:
            self._redis_endpoint.stop()
