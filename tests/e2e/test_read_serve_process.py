"""`customers serve` as a real process: first start, reads after writes, clean SIGTERM."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import httpx
import pytest

from runtime.processes import pid_alive
from tests.support import local_http
from tests.support.serve_process import ServeProcess, serve
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def write_then_read(base_url: str, key: str) -> dict[str, object]:
    auth = {"Authorization": f"Token {key}"}
    created = local_http.post(f"{base_url}/api/customers", json={"first_name": "Ada"}, headers=auth)
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    placed = local_http.post(
        f"{base_url}/api/orders",
        json={"customer_id": customer_id, "amount": "19.99"},
        headers=auth,
    )
    assert placed.status_code == 201, placed.text
    # Read-your-writes: wait for the order's position to be applied.
    read = local_http.get(
        f"{base_url}/api/customers/{customer_id}",
        headers={**auth, "X-Min-Position": str(placed.json()["position"])},
    )
    assert read.status_code == 200, read.text
    body: dict[str, object] = read.json()
    return body


def test_first_start_writes_an_admin_key_then_serves_and_stops_cleanly(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, redis_url, redis_prefix) as first:
        # The first start issued an admin key, readable only by its owner.
        token_file = data_dir / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        key = token_file.read_text().strip()
        assert str(token_file.resolve()) in first.log
        assert key not in first.log
        body = write_then_read(first.base_url, key)
        assert (body["total_orders"], body["total_spent"]) == (1, "19.99")
        assert first.stop() == 0
    # A second start finds keys already and leaves the file alone; the data is all there.
    with serve(data_dir, redis_url, redis_prefix) as second:
        assert token_file.read_text().strip() == key
        response = local_http.get(
            f"{second.base_url}/api/customers/{body['id']}",
            headers={"Authorization": f"Token {key}"},
        )
        assert response.json()["total_spent"] == "19.99"
        assert second.stop() == 0
        assert key not in second.log


def test_sigterm_lets_a_request_in_flight_finish(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, redis_url, redis_prefix) as running:
        key = (data_dir / "admin.token").read_text().strip()
        answers: list[httpx.Response] = []
        # A read that waits for a position nobody will reach (bounded by 2 s) ...
        waiting = threading.Thread(
            target=lambda: answers.append(
                local_http.get(
                    f"{running.base_url}/api/customers/1",
                    headers={"Authorization": f"Token {key}", "X-Min-Position": "999999"},
                    timeout=10,
                )
            )
        )
        waiting.start()
        # (the scrape itself is one request in flight)
        assert wait_until(lambda: "http_requests_in_flight 2" in _metrics(running))
        # ... is still answered when SIGTERM arrives meanwhile.
        assert running.stop() == 0
        waiting.join()
    assert answers[0].status_code == 503
    assert answers[0].headers["retry-after"] == "1"


def _metrics(running: ServeProcess) -> str:
    return local_http.get(f"{running.base_url}/metrics").text


def test_with_no_redis_configured_it_runs_and_stops_an_embedded_one(
    tmp_path: Path, redis_prefix: str
) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, None, redis_prefix) as running:
        state = json.loads((data_dir / "redis" / "server.json").read_text())
        redis_pid = int(state["pid"])
        assert pid_alive(redis_pid)
        key = (data_dir / "admin.token").read_text().strip()
        body = write_then_read(running.base_url, key)
        assert body["total_orders"] == 1
        assert running.stop() == 0
    # No orphan: the embedded server is gone, and its append-only file holds the model.
    assert not pid_alive(redis_pid)
    assert any((data_dir / "redis").rglob("*.aof"))
