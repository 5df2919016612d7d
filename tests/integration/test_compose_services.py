"""Every docker-compose.yml service's command runs with its compose environment.

Each role is started locally against the test PostgreSQL and Redis (see
tests/support/compose_services.py): the APIs must answer their healthcheck, the projector
must carry a write through to the read API.
"""

from __future__ import annotations

import copy
import multiprocessing
import subprocess
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
import redis

from projections.read_model import Keys
from runtime.container import Container
from runtime.settings import Settings
from tests.support import local_http
from tests.support.compose_services import (
    ComposeStores,
    ServiceFailedError,
    compose_services,
    local_command,
    local_environment,
    process_environment,
    running,
    running_together,
)
from tests.support.servers import postgres_admin_url
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def stores(redis_url: str, redis_prefix: str) -> Iterator[ComposeStores]:
    """A database of its own on the test PostgreSQL, as the compose postgres would give."""
    admin = postgres_admin_url()
    database = f"compose_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = urlunparse(urlparse(admin)._replace(path=f"/{database}"))
    yield ComposeStores(url, redis_url, redis_prefix)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def create_keys(stores: ComposeStores, folder: Path, *roles: str) -> list[str]:
    """`customers tokens create` as an operator would run it in the write-api container."""
    service = compose_services()["write-api"]
    data_dir = folder / "operator"
    data_dir.mkdir(exist_ok=True)
    environment = process_environment(local_environment(service["environment"], stores, data_dir))
    keys = []
    # One at a time: the first one creates the event store's tables.
    for role in roles:
        result = subprocess.run(
            [*local_command(["customers"]), "tokens", "create", "--role", role, "--name", role],
            env=environment,
            cwd=data_dir,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        keys.append(result.stdout.strip())
    return keys


def test_the_roles_carry_a_write_through_the_projector_to_the_read_api(
    stores: ComposeStores, tmp_path: Path
) -> None:
    # Given an operator's keys for a producer and for staff
    producer_key, staff_key = create_keys(stores, tmp_path, "producer", "staff")
    producer = {"Authorization": f"Token {producer_key}"}
    staff = {"Authorization": f"Token {staff_key}"}

    # And the three roles running as compose configures them (the APIs answer /healthz)
    roles = dict.fromkeys(("write-api", "projector", "read-api"))
    with running_together(roles, stores, tmp_path) as started:
        write_api, projector, read_api = (started[name] for name in roles)
        # When a producer registers a customer and places an order through the write API
        registered = local_http.post(
            f"{write_api.base_url}/api/customers",
            json={"first_name": "Ada", "last_name": "Lovelace"},
            headers=producer,
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        customer_id = registered.json()["id"]
        placed = local_http.post(
            f"{write_api.base_url}/api/orders",
            json={"customer_id": customer_id, "amount": "12.34"},
            headers=producer,
            timeout=10,
        )
        assert placed.status_code == 201, placed.text

        # Then the projector applies it and the read API serves it to staff
        def served() -> bool:
            response = local_http.get(
                f"{read_api.base_url}/api/customers/{customer_id}",
                headers={**staff, "X-Min-Position": str(placed.json()["position"])},
                timeout=5,
            )
            return response.status_code == 200

        assert wait_until(served, deadline=60), (
            f"the read API never served customer {customer_id}\n"
            f"projector log:\n{projector.log_tail()}\nread-api log:\n{read_api.log_tail()}"
        )
        body = local_http.get(
            f"{read_api.base_url}/api/customers/{customer_id}", headers=staff, timeout=5
        ).json()
        assert (body["first_name"], body["total_orders"], body["total_spent"]) == (
            "Ada",
            1,
            "12.34",
        )

    # And the data went to the stores the compose environment names, not embedded ones
    client = redis.Redis.from_url(stores.redis_url)
    try:
        buckets = Keys(stores.redis_prefix).bucket_pattern(1)
        assert any(client.scan_iter(match=buckets, count=1000))
    finally:
        client.close()
    with psycopg.connect(stores.postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables is not None
    assert tables[0] > 0


def test_a_broken_command_fails_the_check_with_its_output(
    stores: ComposeStores, tmp_path: Path
) -> None:
    service = copy.deepcopy(compose_services()["read-api"])
    service["command"] = ["customers", "read-apj"]
    with (
        pytest.raises(ServiceFailedError, match=r"(?s)read-api exited with [1-9].*read-apj"),
        running("read-api", stores, tmp_path, service=service),
    ):
        pass


def test_a_broken_environment_fails_the_check_naming_the_variable(
    stores: ComposeStores, tmp_path: Path
) -> None:
    service = copy.deepcopy(compose_services()["write-api"])
    service["environment"]["EVENT_STORE_URL"] = "mysql://customers@postgres:3306/customers"
    with (
        pytest.raises(
            ServiceFailedError, match=r"(?s)write-api exited with [1-9].*EVENT_STORE_URL"
        ),
        running("write-api", stores, tmp_path, service=service),
    ):
        pass


# In each worker of the pool below: the barrier that releases all of them at once.
_together: Barrier | None = None


def _join_start(barrier: Barrier) -> None:
    global _together
    _together = barrier


def open_store_together(event_store_url: str) -> str:
    """In a child process: open the store as every role does, once all are ready to."""
    assert _together is not None
    _together.wait(timeout=60)
    try:
        Container(Settings(EVENT_STORE_URL=event_store_url)).close()
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return "ok"


def test_roles_that_start_together_on_one_postgres_store_all_come_up(
    stores: ComposeStores,
) -> None:
    # `docker compose up` starts every role at once when PostgreSQL turns healthy; each
    # one runs the store's schema statements, which collide on PostgreSQL when concurrent.
    # Each of the 6 workers takes one task and waits at the barrier, which lets them all
    # go the moment the last one arrives (no worker can take a second task before).
    processes = 6
    context = multiprocessing.get_context("fork")
    start = context.Barrier(processes)
    with context.Pool(processes, initializer=_join_start, initargs=(start,)) as pool:
        for _ in range(3):
            outcomes = pool.map(open_store_together, [stores.postgres_url] * processes, 1)
            assert outcomes == ["ok"] * processes
