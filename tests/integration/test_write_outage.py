"""When PostgreSQL goes away, writes answer 503 with Retry-After and a JSON detail.

Unreachable (connections refused) or hung (connections open, nothing answered): either
way within the issue's 3 s, and writes succeed again once the server answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse, urlunparse

import pytest
from eventsourcing.persistence import OperationalError
from fastapi.testclient import TestClient

from runtime.container import Container
from runtime.http import build_app
from runtime.settings import Settings
from tests.conftest import with_query
from tests.support.waiting import wait_until
from write_side.api_keys import ApiKeyEntry
from write_side.key_directory import KeyDirectory

# The issue's bound from an outage's start to a write's 503, with a little margin.
OUTAGE_ANSWER_SECONDS = 3.5
RECOVERY_SECONDS = 10.0


class TcpRelay:
    """A loopback TCP relay to a server; closing it cuts every connection, like an outage.

    Frozen, it forwards nothing and connects nothing new while keeping every connection
    open, like a hung server: what was sent waits, and goes on when it thaws.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._flowing.wait()
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass

    def drop_connections(self) -> None:
        """Drop every relayed connection but keep accepting new ones, like a quick restart."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> None:
        """Stop listening and drop every relayed connection."""
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                # shutdown() wakes a thread blocked in accept() or recv(); close() alone does not.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture
def relayed_postgres_url(postgres_url: str) -> Iterator[tuple[str, TcpRelay]]:
    parsed = urlparse(postgres_url)
    relay = TcpRelay(parsed.hostname or "127.0.0.1", parsed.port or 5432)
    netloc = f"{parsed.username or 'postgres'}@127.0.0.1:{relay.port}"
    url = with_query(urlunparse(parsed._replace(netloc=netloc)), connect_timeout="1")
    yield url, relay
    relay.thaw()
    relay.cut()


@pytest.mark.postgres
def test_writes_answer_503_with_retry_after_while_postgresql_is_unreachable(
    relayed_postgres_url: tuple[str, TcpRelay],
) -> None:
    url, relay = relayed_postgres_url
    container = Container(Settings(EVENT_STORE_URL=url))
    key = container.write_service.issue_api_key("shop", "producer").key
    headers = {"Authorization": f"Token {key}"}
    try:
        with TestClient(
            build_app(container, write=True, read=False), raise_server_exceptions=False
        ) as client:
            # The store is up: a write succeeds.
            assert client.post("/api/customers", json={}, headers=headers).status_code == 201
            # The store becomes unreachable: every connection is cut, new ones refused.
            relay.cut()
            for path, body in [
                ("/api/customers", {}),
                ("/api/orders", {"customer_id": 1, "amount": "1"}),
            ]:
                response = client.post(path, json=body, headers=headers)
                # Never a 500 or a traceback: a short JSON reason and when to retry.
                assert response.status_code == 503
                assert response.headers["Retry-After"] == "1"
                assert response.json() == {"detail": "Event store unavailable."}
    finally:
        container.close()


@pytest.mark.postgres
def test_writes_after_postgresql_restarted_succeed_on_new_connections(
    relayed_postgres_url: tuple[str, TcpRelay],
) -> None:
    url, relay = relayed_postgres_url
    container = Container(Settings(EVENT_STORE_URL=url))
    key = container.write_service.issue_api_key("shop", "producer").key
    headers = {"Authorization": f"Token {key}"}
    try:
        with TestClient(
            build_app(container, write=True, read=False), raise_server_exceptions=False
        ) as client:
            # Enough at once that several pooled connections are in use.
            with ThreadPoolExecutor(8) as pool:
                warm = list(
                    pool.map(
                        lambda _: client.post("/api/customers", json={}, headers=headers),
                        range(8),
                    )
                )
            assert [response.status_code for response in warm] == [201] * 8
            # Every pooled connection dies, as in a restart the app did not see.
            relay.drop_connections()
            for path, body in [
                ("/api/customers", {}),
                ("/api/orders", {"customer_id": 1, "amount": "1"}),
            ]:
                response = client.post(path, json=body, headers=headers)
                assert response.status_code == 201, response.text
    finally:
        container.close()


@pytest.mark.postgres
def test_writes_answer_503_while_postgresql_hangs_and_succeed_once_it_answers(
    relayed_postgres_url: tuple[str, TcpRelay],
) -> None:
    url, relay = relayed_postgres_url
    container = Container(Settings(EVENT_STORE_URL=url))
    key = container.write_service.issue_api_key("shop", "producer").key
    headers = {"Authorization": f"Token {key}"}
    try:
        with TestClient(
            build_app(container, write=True, read=False), raise_server_exceptions=False
        ) as client:
            assert client.post("/api/customers", json={}, headers=headers).status_code == 201
            # The server hangs: open connections get no answer, new ones no greeting.
            relay.freeze()
            for path, body in [
                ("/api/customers", {}),
                ("/api/orders", {"customer_id": 1, "amount": "1"}),
                ("/api/customers/1", {"notes": "x"}),
            ]:
                method = client.patch if path == "/api/customers/1" else client.post
                sent = time.monotonic()
                response = method(path, json=body, headers=headers)
                assert time.monotonic() - sent <= OUTAGE_ANSWER_SECONDS
                assert response.status_code == 503
                assert response.headers["Retry-After"] == "1"
                assert response.json() == {"detail": "Event store unavailable."}
            # It answers again: the next writes succeed, with no restart.
            relay.thaw()

            def written() -> bool:
                response = client.post("/api/customers", json={}, headers=headers)
                return bool(response.status_code == 201)

            assert wait_until(written, deadline=RECOVERY_SECONDS)
            response = client.post(
                "/api/orders", json={"customer_id": 1, "amount": "1"}, headers=headers
            )
            assert response.status_code == 201
    finally:
        container.close()


@pytest.mark.postgres
def test_requests_waiting_for_a_key_refresh_that_fails_share_its_failure(
    relayed_postgres_url: tuple[str, TcpRelay],
) -> None:
    url, relay = relayed_postgres_url
    container = Container(Settings(EVENT_STORE_URL=url))
    service = container.write_service
    key = service.issue_api_key("shop", "producer").key
    refreshes: list[float] = []
    api_key_entries = service.api_key_entries

    def counted(after: int = 0) -> tuple[list[ApiKeyEntry], int]:
        refreshes.append(time.monotonic())
        return api_key_entries(after)

    service.api_key_entries = counted  # type: ignore[method-assign]
    directory = KeyDirectory(service)  # has read no keys yet: every lookup needs a refresh
    callers = 20
    start = threading.Barrier(callers)

    def look_up(_: int) -> str:
        start.wait()
        try:
            directory.lookup(key)
        except OperationalError:
            return "unavailable"
        return "answered"

    try:
        relay.freeze()
        with ThreadPoolExecutor(callers) as pool:
            outcomes = list(pool.map(look_up, range(callers)))
        # One attempt, waited for by all, and its failure is every caller's answer.
        assert outcomes == ["unavailable"] * callers
        assert len(refreshes) == 1
        # A request after the failure tries again; once the server answers, it succeeds.
        relay.thaw()
        assert wait_until(lambda: _found(directory, key), deadline=RECOVERY_SECONDS)
    finally:
        relay.thaw()
        container.close()


def _found(directory: KeyDirectory, key: str) -> bool:
    try:
        return directory.lookup(key) is not None
    except OperationalError:
        return False
