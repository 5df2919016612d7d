"""API keys through the CLI: printed once, stored as a hash, revocation felt within a second."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from edge.access_policy import hash_key
from runtime.cli import app as cli
from runtime.container import Container
from runtime.http import build_app
from runtime.settings import Settings
from tests.support.waiting import wait_until

REVOCATION_BOUND_SECONDS = 1.0


def customers(*args: str, store_url: str) -> Result:
    """Run the `customers` command line as an operator would; it opens its own store."""
    return CliRunner().invoke(cli, list(args), env={"EVENT_STORE_URL": store_url})


@pytest.fixture
def container(event_store_url: str) -> Iterator[Container]:
    container = Container(Settings(EVENT_STORE_URL=event_store_url))
    yield container
    container.close()


def test_a_created_key_is_printed_alone_and_only_its_hash_is_stored(
    event_store_url: str, container: Container
) -> None:
    created = customers(
        "tokens", "create", "--role", "producer", "--name", "shop", store_url=event_store_url
    )
    assert created.exit_code == 0, created.stderr
    key = created.stdout.removesuffix("\n")
    assert "\n" not in key
    assert " " not in key
    assert len(key) >= 43  # 32 random bytes, URL-safe base64
    stored = b"".join(
        n.state for n in container.write_service.recorder.select_notifications(1, 100)
    )
    assert key.encode() not in stored
    assert hash_key(key).encode() in stored
    listed = customers("tokens", "list", store_url=event_store_url)
    assert "shop" in listed.stdout
    assert key not in listed.stdout


def test_a_key_name_is_never_reused(event_store_url: str) -> None:
    args = ("tokens", "create", "--role", "staff", "--name", "desk")
    assert customers(*args, store_url=event_store_url).exit_code == 0
    again = customers(*args, store_url=event_store_url)
    assert again.exit_code == 2
    assert again.stdout == ""
    assert again.stderr == "error: a key named 'desk' exists already (names are never reused)\n"


def test_a_key_revoked_through_the_cli_is_refused_by_the_write_api_within_a_second(
    event_store_url: str, container: Container
) -> None:
    key = container.write_service.issue_api_key("shop", "producer").key
    headers = {"Authorization": f"Token {key}"}
    with TestClient(
        build_app(container, write=True, read=False), raise_server_exceptions=False
    ) as client:
        # The key works, and the app has cached it.
        assert client.post("/api/customers", json={}, headers=headers).status_code == 201
        # An operator revokes it from another process.
        revoked = customers("tokens", "revoke", "shop", store_url=event_store_url)
        assert revoked.exit_code == 0, revoked.stderr

        # Within the bound, the running app refuses the key.
        def refused() -> bool:
            response = client.post("/api/customers", json={}, headers=headers)
            detail: object = response.json()
            return response.status_code == 401 and detail == {"detail": "Invalid token."}

        assert wait_until(refused, deadline=REVOCATION_BOUND_SECONDS)
    assert customers("tokens", "revoke", "shop", store_url=event_store_url).exit_code == 2
    assert customers("tokens", "revoke", "nobody", store_url=event_store_url).exit_code == 2


def test_a_key_created_by_another_process_works_at_once(
    event_store_url: str, container: Container
) -> None:
    first = container.write_service.issue_api_key("first", "producer").key
    with TestClient(
        build_app(container, write=True, read=False), raise_server_exceptions=False
    ) as client:
        # The running app has just loaded its keys.
        first_headers = {"Authorization": f"Token {first}"}
        assert client.post("/api/customers", json={}, headers=first_headers).status_code == 201
        # An operator creates a key elsewhere; the producer uses it immediately.
        created = customers(
            "tokens", "create", "--role", "producer", "--name", "new", store_url=event_store_url
        )
        headers = {"Authorization": f"Token {created.stdout.strip()}"}
        assert client.post("/api/customers", json={}, headers=headers).status_code == 201
