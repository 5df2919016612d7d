"""When PostgreSQL goes away, writes answer 503 with Retry-After and a JSON detail."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlparse, urlunparse

import pytest
from fastapi.testclient import TestClient

from runtime.container import Container
from runtime.http import create_write_app
from runtime.settings import Settings
from tests.conftest import with_query


class TcpRelay:
    """A loopback TCP relay to a server; closing it cuts every connection, like an outage."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

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
        with TestClient(create_write_app(container), raise_server_exceptions=False) as client:
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
