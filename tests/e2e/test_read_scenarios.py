"""Staff reads through the real projector: writes in, totals out, keys revoked, numbers shown."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import httpx
import pytest

from contract.customer_document import RESPONSE_FIELDS
from projections.rebuild import rebuild
from tests.e2e.all_in_one import Running, all_in_one
from tests.support import local_http
from tests.support.fast_paths import framework_alone
from tests.support.waiting import wait_until


@pytest.fixture
def running(event_store_url: str, redis_url: str, redis_prefix: str) -> Iterator[Running]:
    with all_in_one(event_store_url, redis_url, redis_prefix) as running:
        yield running


@pytest.fixture
def sqlite_running(sqlite_url: str, redis_url: str, redis_prefix: str) -> Iterator[Running]:
    with all_in_one(sqlite_url, redis_url, redis_prefix) as running:
        yield running


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Token {key}"}


def test_orders_cancellations_and_refunds_show_in_the_totals_once_applied(
    running: Running,
) -> None:
    client = httpx.Client(base_url=running.base_url, headers=auth(running.admin_key))
    # A customer registers and places three orders.
    client.post("/api/customers", json={"id": 41, "first_name": "Lin"}).raise_for_status()
    amounts = ["10.10", "20.20", "0.30"]
    orders = [
        client.post("/api/orders", json={"customer_id": 41, "amount": amount}).json()
        for amount in amounts
    ]
    # One order is cancelled, another partly refunded.
    client.post(f"/api/orders/{orders[1]['order_id']}/cancel").raise_for_status()
    refund = client.post(f"/api/orders/{orders[0]['order_id']}/refunds", json={"amount": "0.10"})
    position = refund.json()["position"]

    # Reading at the refund's position sees all of it, exactly.
    response = client.get("/api/customers/41", headers={"X-Min-Position": str(position)})
    assert response.status_code == 200
    assert int(response.headers["x-projection-position"]) >= position
    body = response.json()
    assert (body["total_orders"], body["total_spent"]) == (2, "10.30")
    client.close()


def test_a_revoked_key_is_refused_within_a_second(sqlite_running: Running) -> None:
    service = sqlite_running.container.write_service
    key = service.issue_api_key("desk-7", "staff").key
    url = f"{sqlite_running.base_url}/api/customers/1"
    # The key is accepted once projected (404: authenticated, no such customer) ...
    assert wait_until(lambda: local_http.get(url, headers=auth(key)).status_code == 404)
    # ... and refused within a second of its revocation.
    service.revoke_api_key("desk-7")
    assert wait_until(
        lambda: local_http.get(url, headers=auth(key)).status_code == 401, deadline=1.0
    )


def test_metrics_show_latency_by_route_and_status_and_projection_numbers(
    sqlite_running: Running,
) -> None:
    base = sqlite_running.base_url
    local_http.get(f"{base}/api/customers/1", headers=auth(sqlite_running.admin_key))
    local_http.get(f"{base}/api/customers/1")
    local_http.get(f"{base}/readyz")
    text = local_http.get(f"{base}/metrics").text
    assert local_http.get(f"{base}/metrics").headers["content-type"].startswith("text/plain")
    route = 'route="/api/customers/{customer_id}"'
    assert re.search(
        rf'http_request_duration_seconds_count{{method="GET",{route},status="404"}} 1', text
    )
    assert re.search(
        rf'http_request_duration_seconds_count{{method="GET",{route},status="401"}} 1', text
    )
    assert 'http_request_duration_seconds_bucket{method="GET",route="/readyz"' in text
    assert re.search(r"^projection_position \d+$", text, re.MULTILINE)
    assert re.search(r"^projection_lag_events \d+$", text, re.MULTILINE)
    assert re.search(r"^# TYPE http_request_duration_seconds histogram$", text, re.MULTILINE)


def test_readyz_reports_position_lag_and_dead_letters(sqlite_running: Running) -> None:
    response = local_http.get(f"{sqlite_running.base_url}/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["dead_letters"] == 0
    assert body["event_store_position"] >= 1
    assert body["projection_lag"] == max(
        body["event_store_position"] - body["projection_position"], 0
    )
    assert local_http.get(f"{sqlite_running.base_url}/healthz").json() == {"status": "ok"}


def test_openapi_documents_every_status_of_the_read_endpoint(sqlite_running: Running) -> None:
    schema = local_http.get(f"{sqlite_running.base_url}/openapi.json").json()
    operation = schema["paths"]["/api/customers/{customer_id}"]["get"]
    responses = operation["responses"]
    for status in ("200", "401", "403", "404", "422", "500", "503"):
        assert "application/json" in responses[status]["content"], status
    assert responses["401"]["headers"]["WWW-Authenticate"]
    assert responses["503"]["headers"]["Retry-After"]
    assert "X-Projection-Position" in responses["200"]["headers"]
    document = schema["components"]["schemas"]["CustomerDocument"]
    assert tuple(document["properties"]) == RESPONSE_FIELDS
    parameters = {parameter["name"] for parameter in operation["parameters"]}
    assert {"customer_id", "authorization", "x-min-position", "if-none-match"} <= parameters
    assert local_http.get(f"{sqlite_running.base_url}/docs").status_code == 200


# Headers that differ between any two answers, whoever gives them.
VOLATILE_HEADERS = frozenset({"date", "server", "x-request-id"})


def test_the_documented_route_answers_exactly_as_the_fast_path(sqlite_running: Running) -> None:
    client = httpx.Client(base_url=sqlite_running.base_url)
    key = sqlite_running.admin_key
    created = client.post("/api/customers", json={"id": 5}, headers=auth(key)).json()
    valid = ("Authorization", f"Token {key}")
    position = ("X-Min-Position", str(created["position"]))
    # Both runs see the same read model: customer 5 projected before either starts.
    assert client.get("/api/customers/5", headers=[valid, position]).status_code == 200
    header_variants: list[list[tuple[str, str] | tuple[bytes, bytes]]] = [
        [valid],
        [valid, position],
        [valid, ("X-Min-Position", "x")],
        [valid, ("X-Min-Position", "99999999999999999999")],
        [],
        [("Authorization", "Token")],
        [("Authorization", "token " + key)],
        [("Authorization", "Bearer " + key)],
        [valid, valid],  # joined: "Token k,Token k" has no space after the comma
        [valid, ("Authorization", "Token other")],
        [("Authorization", "Token nope"), valid],
        [("Authorization", ""), valid],
        [(b"Authorization", b"Token\xa0" + key.encode())],
        [(b"Authorization", b"Token " + key.encode() + b"\xa0")],
        [(b"Authorization", b"Token \xc3\xa9")],
        [(b"Authorization", b"Token \xff")],
        [valid, ("If-None-Match", "*")],
        [("Authorization", "Token nope"), ("X-Min-Position", "99999999999999")],
    ]
    paths = [
        "/api/customers/5",
        "/api/customers/6",
        "/api/customers/05",
        "/api/customers/0",
        "/api/customers/+5",
        "/api/customers/",
        "/api/customers/5/",
        "/api/customers/9223372036854775808",
        # Not answered directly by the protocol: through the ASGI fast path instead.
        "/api/customers/5?x=1",
        "/api/customers/%35",
    ]
    app = sqlite_running.app

    def answers() -> list[tuple[str, str, int, dict[str, str], bytes]]:
        seen = []
        for method in ("GET", "HEAD", "POST", "DELETE"):
            for path in paths:
                for headers in header_variants:
                    response = client.request(method, path, headers=headers)
                    kept = {
                        name: value
                        for name, value in response.headers.items()
                        if name not in VOLATILE_HEADERS
                    }
                    seen.append((method, path, response.status_code, kept, response.content))
        return seen

    fast = answers()
    framework = framework_alone(app, answers)
    for fast_answer, framework_answer in zip(fast, framework, strict=True):
        assert fast_answer == framework_answer
    statuses = {status for _, _, status, _, _ in fast}
    assert statuses >= {200, 304, 401, 404, 405, 422}
    client.close()


def test_reads_follow_a_rebuild_to_its_new_generation_without_a_miss(
    sqlite_running: Running,
) -> None:
    container = sqlite_running.container
    client = httpx.Client(base_url=sqlite_running.base_url, headers=auth(sqlite_running.admin_key))
    written = client.post("/api/customers", json={"id": 77, "last_name": "Okafor"}).json()
    before = client.get("/api/customers/77", headers={"X-Min-Position": str(written["position"])})
    assert before.status_code == 200
    misses: list[int] = []
    stop = threading.Event()

    def keep_reading() -> None:
        while not stop.is_set():
            status = client.get("/api/customers/77").status_code
            if status != 200:
                misses.append(status)

    # Staff keep reading while an operator rebuilds; the old generation is dropped soon after.
    reader = threading.Thread(target=keep_reading)
    reader.start()
    try:
        result = rebuild(
            container.write_service.recorder, container.redis, container.redis_keys, drop_grace=0.5
        )
    finally:
        stop.set()
        reader.join()
    assert misses == []
    assert sqlite_running.app.state.read_side.state.generation == result.new_generation
    after = client.get("/api/customers/77")
    assert after.content == before.content
    client.close()
