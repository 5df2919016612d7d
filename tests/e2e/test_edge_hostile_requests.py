"""Hostile and odd requests against the real `customers serve` process.

Each case was a defect: a 41-byte body froze the process, bodies had no size limit, deep
JSON gave a plain-text 500 with a traceback, repeated Authorization headers were read
differently by each path, HEAD and other methods were mis-answered, and ids were read
differently by the write side. Every answer here must be JSON, bounded and immediate.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support import local_http
from tests.support.serve_process import serve
from tests.support.servers import redis_url
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

FROZEN_WAIT = 10.0  # far beyond any honest answer; a frozen loop never answers at all


@dataclass(frozen=True)
class Service:
    base_url: str
    port: int
    key: str
    customer_id: int
    order_id: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Token {key or self.key}"}

    def post(self, path: str, content: bytes | str, **headers: str) -> httpx.Response:
        return local_http.post(
            self.base_url + path,
            content=content,
            headers={"Content-Type": "application/json", **self.auth(), **headers},
            timeout=FROZEN_WAIT,
        )

    def alive(self) -> bool:
        return local_http.get(f"{self.base_url}/healthz", timeout=FROZEN_WAIT).status_code == 200


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    prefix = f"t{uuid.uuid4().hex[:12]}"
    with serve(data_dir, redis_url(), prefix) as running:
        key = (data_dir / "admin.token").read_text().strip()
        auth = {"Authorization": f"Token {key}"}
        created = local_http.post(f"{running.base_url}/api/customers", json={}, headers=auth)
        customer_id = created.json()["id"]
        placed = local_http.post(
            f"{running.base_url}/api/orders",
            json={"customer_id": customer_id, "amount": "10.00"},
            headers=auth,
        )
        # Customer 1000, whose id the write side once read from `1_000`, `+1000`, ...
        thousand = local_http.post(
            f"{running.base_url}/api/customers", json={"id": 1000}, headers=auth
        )
        assert thousand.status_code == 201, thousand.text
        # The read side knows keys once the projector has applied them: on a cold start
        # (a fresh checkout compiling every module) that can take a second or more.
        customer_url = f"{running.base_url}/api/customers/{customer_id}"
        assert wait_until(
            lambda: local_http.get(customer_url, headers=auth).status_code == 200, deadline=30
        ), "the read side never knew the admin key"
        port = int(running.base_url.rsplit(":", 1)[1])
        yield Service(running.base_url, port, key, customer_id, placed.json()["order_id"])


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert "Traceback" not in response.text
    assert "detail" in response.json()


# Numbers that cost more than microseconds to convert


@pytest.mark.parametrize("number", ["1e999999999", "1e300000", "-1e999999999", "1" * 5000])
def test_an_order_with_a_huge_number_is_refused_at_once_and_the_server_lives(
    service: Service, number: str
) -> None:
    body = f'{{"customer_id":{service.customer_id},"amount":{number}}}'
    response = service.post("/api/orders", body)
    assert_json_error(response, 422)
    assert len(response.content) < 1024  # the number is never echoed
    assert service.alive()


def test_a_refund_with_a_huge_number_is_refused_at_once(service: Service) -> None:
    response = service.post(f"/api/orders/{service.order_id}/refunds", '{"amount":1e999999999}')
    assert_json_error(response, 422)
    assert response.json()["detail"][0]["loc"] == ["body", "amount"]
    assert service.alive()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '"\\ud800"', '"a\\udfffb"'])
def test_nan_infinity_and_lone_surrogates_are_422_in_any_field(
    service: Service, value: str
) -> None:
    for body in (
        f'{{"customer_id":{service.customer_id},"amount":{value}}}',
        f'{{"first_name":{value}}}',
    ):
        path = "/api/orders" if "amount" in body else "/api/customers"
        assert_json_error(service.post(path, body), 422)


def test_deep_json_is_422_on_the_order_fast_path_and_the_framework(service: Service) -> None:
    deep = "[" * 5000 + "]" * 5000
    for path in ("/api/orders", "/api/customers"):
        assert_json_error(service.post(path, deep), 422)


def test_a_422_echoes_at_most_a_short_excerpt(service: Service) -> None:
    response = service.post("/api/customers", '{"first_name":"' + "x" * 60_000 + '"}')
    assert_json_error(response, 422)
    assert len(response.content) < 1024


# Body size


def test_a_declared_oversize_body_is_413_before_it_is_sent(service: Service) -> None:
    # Only the headers go out: the answer must come without the 50 MB ever being read.
    with socket.create_connection(("127.0.0.1", service.port), timeout=FROZEN_WAIT) as conn:
        conn.sendall(
            b"POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Token {service.key}\r\n".encode()
            + b"Content-Length: 52428800\r\n\r\n"
        )
        answer = conn.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"larger than 65536 bytes" in body


def test_a_chunked_body_over_the_limit_is_413(service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(200):  # 200 x 8 KiB = 1.6 MB, far past the 64 KiB limit
            yield b" " * 8192

    response = local_http.post(
        f"{service.base_url}/api/customers",
        content=chunks(),
        headers={"Content-Type": "application/json", **service.auth()},
        timeout=FROZEN_WAIT,
    )
    assert_json_error(response, 413)


# Authentication: one header rule on every path (DRF's, with Django's joining)


def test_repeated_authorization_headers_are_joined_on_every_path(service: Service) -> None:
    twice = [("Authorization", f"Token {service.key}"), ("Authorization", "Token other")]
    requests = [
        ("GET", f"/api/customers/{service.customer_id}", None),
        ("POST", "/api/orders", f'{{"customer_id":{service.customer_id},"amount":"1.00"}}'),
        ("PATCH", f"/api/customers/{service.customer_id}", '{"first_name":"Eve"}'),
    ]
    with httpx.Client(base_url=service.base_url, timeout=FROZEN_WAIT) as client:
        for method, path, body in requests:
            headers = [*twice, ("Content-Type", "application/json")]
            response = client.request(method, path, content=body, headers=headers)
            assert_json_error(response, 401)
            assert response.json()["detail"] == (
                "Invalid token header. Token string should not contain spaces."
            )
            assert response.headers["www-authenticate"] == "Token"


@pytest.mark.parametrize("header", [b"Token\xa0KEY", b"\xa0Token KEY", b"Token KEY\xa0"])
def test_a_non_breaking_space_is_no_separator(service: Service, header: bytes) -> None:
    raw = header.replace(b"KEY", service.key.encode())
    response = local_http.get(
        f"{service.base_url}/api/customers/{service.customer_id}",
        headers=[(b"Authorization", raw)],
        timeout=FROZEN_WAIT,
    )
    assert_json_error(response, 401)


# Methods and paths


def test_head_answers_like_get_without_a_body(service: Service) -> None:
    url = f"{service.base_url}/api/customers/{service.customer_id}"
    got = local_http.get(url, headers=service.auth(), timeout=FROZEN_WAIT)
    head = local_http.head(url, headers=service.auth(), timeout=FROZEN_WAIT)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers["etag"] == got.headers["etag"]


def test_another_method_is_authenticated_first_then_405_with_every_served_method(
    service: Service,
) -> None:
    url = f"{service.base_url}/api/customers/{service.customer_id}"
    anonymous = local_http.post(url, timeout=FROZEN_WAIT)
    assert_json_error(anonymous, 401)
    assert anonymous.headers["www-authenticate"] == "Token"
    refused = local_http.post(url, headers=service.auth(), timeout=FROZEN_WAIT)
    assert_json_error(refused, 405)
    assert refused.json()["detail"] == 'Method "POST" not allowed.'
    assert refused.headers["allow"] == "GET, HEAD, PATCH"


def test_a_trailing_slash_is_404_json_not_a_redirect(service: Service) -> None:
    for headers in ({}, service.auth()):
        response = local_http.get(
            f"{service.base_url}/api/customers/{service.customer_id}/",
            headers=headers,
            timeout=FROZEN_WAIT,
        )
        assert_json_error(response, 404)


def test_a_malformed_body_is_checked_after_authentication(service: Service) -> None:
    for body in (b"{not json", b'{"first_name": "\xff"}'):
        anonymous = local_http.post(
            f"{service.base_url}/api/customers",
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=FROZEN_WAIT,
        )
        assert_json_error(anonymous, 401)
        authenticated = service.post("/api/customers", body)
        assert_json_error(authenticated, 400)


# Ids: Django's <int:pk> on both sides


@pytest.mark.parametrize(
    "segment", ["1_000", "+1000", "%201000", "1000.0", "\u0661\u0660\u0660\u0660", "0"]
)
def test_the_write_side_reads_ids_as_the_read_side_does(service: Service, segment: str) -> None:
    # Customer 1000 exists; none of these spell its id in Django's <int:pk>.
    response = local_http.patch(
        f"{service.base_url}/api/customers/{segment}",
        json={"first_name": "Eve"},
        headers=service.auth(),
        timeout=FROZEN_WAIT,
    )
    assert_json_error(response, 404)
    read = local_http.get(
        f"{service.base_url}/api/customers/{segment}", headers=service.auth(), timeout=FROZEN_WAIT
    )
    assert_json_error(read, 404)


def test_leading_zeros_name_the_same_customer_on_both_sides(service: Service) -> None:
    segment = f"00{service.customer_id}"
    written = local_http.patch(
        f"{service.base_url}/api/customers/{segment}",
        json={"notes": "zeros"},
        headers=service.auth(),
        timeout=FROZEN_WAIT,
    )
    assert written.status_code == 200, written.text
    assert written.json()["id"] == service.customer_id
    read = local_http.get(
        f"{service.base_url}/api/customers/{segment}",
        headers={**service.auth(), "X-Min-Position": str(written.json()["position"])},
        timeout=FROZEN_WAIT,
    )
    assert read.status_code == 200
    assert read.json()["id"] == service.customer_id


def test_every_response_carries_a_request_id(service: Service) -> None:
    for path in ("/healthz", "/api/customers/1", "/nowhere"):
        response = local_http.get(service.base_url + path, timeout=FROZEN_WAIT)
        assert response.headers["x-request-id"]
    echoed = local_http.get(
        f"{service.base_url}/healthz", headers={"X-Request-Id": "abc-123"}, timeout=FROZEN_WAIT
    )
    assert echoed.headers["x-request-id"] == "abc-123"
