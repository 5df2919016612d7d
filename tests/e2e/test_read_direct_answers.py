"""Customer reads answered directly by the protocol, against the real `customers serve` process.

A GET or HEAD of /api/customers/<id> with a plain path is answered before uvicorn builds a
request cycle (runtime/http_protocol.py, edge.pipeline's `direct`). These cases are what
that way must still get right: order on a pipelined connection, HEAD, Connection: close,
HTTP/1.0, a client that leaves before its answer, and the metrics every request counts in.
Answers equal to the framework's own are checked in test_read_scenarios (the parity test).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import local_http
from tests.support.raw_http import Reader, connect
from tests.support.serve_process import ServeProcess, serve
from tests.support.servers import redis_url
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis]

MIN_POSITION_WAIT = 0.5  # how long a read waits for X-Min-Position here (default 2 s)


@dataclass(frozen=True)
class Service:
    server: ServeProcess
    port: int
    key: str
    ids: tuple[int, int, int]

    def read(self, path: str, method: str = "GET", extra: str = "", version: str = "1.1") -> bytes:
        return (
            f"{method} {path} HTTP/{version}\r\nHost: test\r\n"
            f"Authorization: Token {self.key}\r\n{extra}\r\n"
        ).encode()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("direct") / "data"
    prefix = f"t{uuid.uuid4().hex[:12]}"
    extra = {"MIN_POSITION_WAIT_SECONDS": str(MIN_POSITION_WAIT)}
    with serve(data_dir, redis_url(), prefix, extra) as running:
        key = (data_dir / "admin.token").read_text().strip()
        auth = {"Authorization": f"Token {key}"}
        ids = []
        for name in ("Ada", "Lin", "Omid"):
            created = local_http.post(
                f"{running.base_url}/api/customers", json={"first_name": name}, headers=auth
            )
            ids.append(created.json()["id"])
        last = f"{running.base_url}/api/customers/{ids[-1]}"
        assert wait_until(
            lambda: local_http.get(last, headers=auth).status_code == 200, deadline=30
        )
        port = int(running.base_url.rsplit(":", 1)[1])
        yield Service(running, port, key, (ids[0], ids[1], ids[2]))


def test_pipelined_reads_come_back_in_order_each_with_its_own_customer(
    service: Service,
) -> None:
    first, second, third = service.ids
    # Five requests in one write: direct answers, a HEAD, a query string (the ASGI way)
    # and a path the framework answers, interleaved on one connection.
    requests = [
        service.read(f"/api/customers/{first}"),
        service.read(f"/api/customers/{second}", method="HEAD"),
        service.read(f"/api/customers/{third}?fields=all"),
        service.read("/api/customers/"),
        service.read(f"/api/customers/{second}"),
    ]
    with connect(service.port) as sock:
        sock.sendall(b"".join(requests))
        reader = Reader(sock)
        answers = [reader.answer(to_head=index == 1) for index in range(len(requests))]
    assert [answer.status for answer in answers] == [200, 200, 200, 404, 200]
    assert answers[0].json()["id"] == first
    assert answers[2].json()["id"] == third
    assert answers[4].json()["id"] == second
    # HEAD: the GET's headers, its length included, and no body.
    assert answers[1].body == b""
    assert answers[1].headers["content-length"] == answers[4].headers["content-length"]
    assert answers[1].headers["etag"] == answers[4].headers["etag"]
    # Every answer carries the edge's headers, whichever way it was made.
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-request-id"]


def test_reads_one_after_another_on_a_kept_connection_answer_get_and_head_alike(
    service: Service,
) -> None:
    path = f"/api/customers/{service.ids[1]}"
    with connect(service.port) as sock:
        reader = Reader(sock)
        sock.sendall(service.read(path))
        got = reader.answer()
        sock.sendall(service.read(path, method="HEAD"))
        headed = reader.answer(to_head=True)
        sock.sendall(service.read(path))
        again = reader.answer()
        assert not reader.wait_closed(0.2)  # kept open, nothing more sent
    assert got.status == headed.status == again.status == 200
    assert got.json()["id"] == service.ids[1]
    assert again.body == got.body
    # HEAD: the GET's headers, its length included, and no body.
    assert headed.headers["content-length"] == got.headers["content-length"]
    assert headed.headers["etag"] == got.headers["etag"]
    assert headed.body == b""


def test_a_read_asking_to_close_is_answered_and_the_connection_closed(service: Service) -> None:
    with connect(service.port) as sock:
        sock.sendall(
            service.read(f"/api/customers/{service.ids[0]}", extra="Connection: close\r\n")
        )
        reader = Reader(sock)
        answer = reader.answer()
        assert reader.wait_closed(5.0)
    assert answer.status == 200
    assert answer.headers["connection"] == "close"


def test_an_http_1_0_read_is_answered_and_closed(service: Service) -> None:
    with connect(service.port) as sock:
        sock.sendall(service.read(f"/api/customers/{service.ids[1]}", version="1.0"))
        reader = Reader(sock)
        answer = reader.answer()
        assert reader.wait_closed(5.0)
    assert answer.status == 200
    assert answer.json()["id"] == service.ids[1]


def test_a_read_sent_with_its_writes_position_waits_and_sees_the_write(service: Service) -> None:
    """X-Min-Position waits inside a direct answer, which runs outside any asyncio Task."""
    customer = service.ids[1]
    auth = {"Authorization": f"Token {service.key}"}
    placed = local_http.post(
        f"{service.server.base_url}/api/orders",
        json={"customer_id": customer, "amount": "12.34"},
        headers=auth,
    )
    assert placed.status_code == 201
    position = placed.json()["position"]
    with connect(service.port) as sock:
        # Sent at once: the projector may not have applied the order yet.
        sock.sendall(
            service.read(f"/api/customers/{customer}", extra=f"X-Min-Position: {position}\r\n")
        )
        answer = Reader(sock).answer()
    assert answer.status == 200
    assert int(answer.headers["x-projection-position"]) >= position
    assert answer.json()["total_spent"] != "0.00"


def answered(service: Service, status: int) -> int:
    """GET reads of a customer the server has answered with `status` (its /metrics)."""
    metrics = local_http.get(
        f"{service.server.base_url}/metrics", headers={"Authorization": f"Token {service.key}"}
    )
    series = re.compile(
        r'^http_request_duration_seconds_count\{method="GET",'
        rf'route="/api/customers/\{{customer_id\}}",status="{status}"\}} (\d+)$',
        re.MULTILINE,
    )
    found = series.search(metrics.text)
    return int(found.group(1)) if found else 0


def test_a_client_gone_before_its_answer_leaves_the_server_serving(service: Service) -> None:
    not_caught_up = answered(service, 503)
    # The read waits for a position the store never reaches; its client leaves meanwhile.
    waiting = service.read(
        f"/api/customers/{service.ids[0]}", extra=f"X-Min-Position: {10**15}\r\n"
    )
    with connect(service.port) as sock:
        sock.sendall(waiting)
    # Its answer (503, not caught up) falls due with nobody to take it.
    assert wait_until(lambda: answered(service, 503) == not_caught_up + 1)
    # The others are served as before, and nothing went wrong in the server.
    with connect(service.port) as sock:
        sock.sendall(service.read(f"/api/customers/{service.ids[2]}"))
        assert Reader(sock).answer().json()["id"] == service.ids[2]
    assert "Traceback" not in service.server.log
    assert "exception" not in service.server.log.lower()


def test_direct_reads_are_counted_in_the_metrics_like_every_request(service: Service) -> None:
    before = answered(service, 200)
    with connect(service.port) as sock:
        reader = Reader(sock)
        for _ in range(7):
            sock.sendall(service.read(f"/api/customers/{service.ids[0]}"))
            assert reader.answer().status == 200
    assert answered(service, 200) == before + 7


KEEP_ALIVE = 5.0  # uvicorn's timeout_keep_alive, which the service keeps


def test_a_long_wait_pipelined_behind_an_answer_made_at_once_is_not_cut_by_keep_alive(
    tmp_path: Path,
) -> None:
    """An answer made without waiting (here a 401) ends inside the parser's callback, and
    the connection is idle for that instant; the request right behind it in the same read
    is not, however long it is answered for (here an X-Min-Position wait past the
    keep-alive timeout)."""
    wait = KEEP_ALIVE + 1.5
    data_dir = tmp_path / "data"
    prefix = f"t{uuid.uuid4().hex[:12]}"
    with serve(data_dir, redis_url(), prefix, {"MIN_POSITION_WAIT_SECONDS": str(wait)}) as running:
        key = (data_dir / "admin.token").read_text().strip()
        port = int(running.base_url.rsplit(":", 1)[1])
        assert wait_until(lambda: local_http.get(f"{running.base_url}/readyz").status_code == 200)
        with connect(port) as sock:
            sock.sendall(
                b"GET /api/customers/1 HTTP/1.1\r\nHost: test\r\n\r\n"  # no key: 401 at once
                + f"GET /api/customers/1 HTTP/1.1\r\nHost: test\r\nAuthorization: Token {key}"
                f"\r\nX-Min-Position: {10**15}\r\n\r\n".encode()
            )
            reader = Reader(sock)
            refused = reader.answer()
            started = time.monotonic()
            waited = reader.answer()  # before the fix: the connection closed at 5 s
            elapsed = time.monotonic() - started
    assert refused.status == 401
    assert waited.status == 503
    assert "X-Min-Position" in waited.json()["detail"]
    assert elapsed >= KEEP_ALIVE
