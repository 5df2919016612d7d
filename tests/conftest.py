"""Fixtures for real stores: each test gets its own PostgreSQL schema or SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

import psycopg
import pytest

from tests.support.require_stores import (  # noqa: F401  (hooks: REQUIRE_STORES=1 in CI)
    pytest_runtest_makereport,
    pytest_sessionfinish,
)
from tests.support.servers import postgres_admin_url
from tests.support.valkey_cluster import ClusterSupply, ValkeyCluster

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def with_query(url: str, **params: str) -> str:
    parsed = urlparse(url)
    query = dict(parse_qsl(parsed.query))
    query.update(params)
    return urlunparse(parsed._replace(query=urlencode(query)))


def small_pool(event_store_url: str) -> str:
    """The store URL with a pool of 2 on PostgreSQL (its own default opens 10 connections
    at start, 10 server processes per test) for tests that send one request at a time;
    the pool still grows by its overflow when more are needed at once."""
    if not event_store_url.startswith(("postgresql:", "postgres:")):
        return event_store_url
    return with_query(event_store_url, pool_size="2")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An event store URL on real PostgreSQL, isolated in a fresh schema."""
    admin = postgres_admin_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield with_query(admin, schema=schema)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.sqlite'}"


@pytest.fixture(params=STORES)
def event_store_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    fixture = "postgres_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(fixture)
    return url


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "redis_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def redis_url() -> str:
    """A real Redis: the configured one (TEST_REDIS_URL) or an embedded one."""
    from tests.support.servers import redis_url as server_url

    return server_url()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test or run uses."""
    import redis

    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefix}:*", f"{{{prefix}}}:*", f"{{{prefix}:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture
def cli_env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """The CLI's environment for one test: its own SQLite store, Redis prefix and DATA_DIR."""
    return {
        "EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.sqlite'}",
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture(scope="session")
def _cluster_supply(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSupply]:
    supply = ClusterSupply(tmp_path_factory.mktemp("valkey-clusters"))
    yield supply
    supply.close()


def _prepare_for_the_next_test(request: pytest.FixtureRequest, supply: ClusterSupply) -> None:
    """If the test run next takes a fresh cluster, start it now, while this one runs."""
    items = request.session.items
    here = items.index(request.node)
    upcoming = items[here + 1] if here + 1 < len(items) else None
    if upcoming is not None and "valkey_cluster" in getattr(upcoming, "fixturenames", ()):
        supply.prepare()


@pytest.fixture
def valkey_cluster(
    request: pytest.FixtureRequest, _cluster_supply: ClusterSupply
) -> Iterator[ValkeyCluster]:
    """A fresh 3-master + 3-replica Valkey Cluster from the bundled binary, for one test.

    Function scope on purpose: tests kill, hang and restart its nodes, which leaves masters
    and replicas swapped; a shared cluster would hand the next test another topology, or
    one still failing over. A fresh one costs about 2 s, most of it Valkey's own delay
    before a new master accepts writes: when the next test takes one too, it is started
    while this test runs.
    """
    cluster = _cluster_supply.take()
    _prepare_for_the_next_test(request, _cluster_supply)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def _module_valkey_cluster(_cluster_supply: ClusterSupply) -> Iterator[ValkeyCluster]:
    cluster = _cluster_supply.take()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def shared_valkey_cluster(
    request: pytest.FixtureRequest,
    _module_valkey_cluster: ValkeyCluster,
    _cluster_supply: ClusterSupply,
) -> ValkeyCluster:
    """One 3+3 Valkey Cluster for the tests of a module that neither fault its nodes nor
    move its slots (those take `valkey_cluster`): each works under a key prefix of its own,
    and gets it whole and in sync. Saves a fresh cluster's ~2 s per test."""
    _prepare_for_the_next_test(request, _cluster_supply)
    _module_valkey_cluster.wait_until_healthy()
    return _module_valkey_cluster
