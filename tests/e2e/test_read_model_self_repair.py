"""Redis loses or rolls back the read model under a running `customers serve`.

Each test runs `customers serve` (SQLite event store) against a Valkey of its own with AOF
on, writes customers and orders, and then breaks Redis one way while a reader loop asks
for every customer with a staff key, and with a key revoked before the fault:

- killed and restarted empty (its AOF deleted);
- restarted from a copy of its files taken before a key was revoked and orders placed;
- flushed while it runs (no restart, no reconnect).

Every answer the reader got must be exactly the pure fold of the event store (the audit's
replay) or a 503; a 401 for a valid key, a 404 for a customer that exists, a stale total
or a revoked key let in is a failure. The read model repairs itself (no restart, no
rebuild by hand), `customers audit` is clean afterwards, and the repair time is reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from projections.replay import history
from runtime.event_store import open_customer_service
from tests.support import local_http
from tests.support.serve_process import ServeProcess, serve
from tests.support.valkey_process import ValkeyProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

CUSTOMERS = str(Path(sys.executable).with_name("customers"))
CUSTOMER_COUNT = 6
REPAIR_DEADLINE_SECONDS = 30.0
MAX_READS = 50_000  # the reader loop's bound, whatever the duration


@dataclass
class Deployment:
    valkey: ValkeyProcess
    server: ServeProcess
    env: dict[str, str]
    admin: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CUSTOMERS, *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def new_key(self, role: str, name: str) -> str:
        created = self.cli("tokens", "create", "--role", role, "--name", name)
        assert created.returncode == 0, created.stderr
        return created.stdout.strip()

    def get(self, customer_id: int, key: str, **headers: str) -> httpx.Response:
        return local_http.get(
            f"{self.server.base_url}/api/customers/{customer_id}",
            headers={"Authorization": f"Token {key}", **headers},
            timeout=10,
        )

    def expected(self) -> dict[int, dict[str, Any]]:
        """Every customer's document by the pure fold of the event store."""
        service = open_customer_service(self.env["EVENT_STORE_URL"])
        try:
            return history(service.recorder, set())
        finally:
            service.close()

    def expected_at(self, data_dir: Path) -> dict[int, dict[str, Any]]:
        self.env["EVENT_STORE_URL"] = f"sqlite:///{data_dir / 'events.sqlite'}"
        return self.expected()


@contextmanager
def deployment(tmp_path: Path, redis_prefix: str) -> Iterator[Deployment]:
    valkey = ValkeyProcess(tmp_path / "valkey")
    valkey.start()
    data_dir = tmp_path / "data"
    try:
        with serve(data_dir, valkey.url, redis_prefix) as server:
            env = {
                **os.environ,
                "DATA_DIR": str(data_dir),
                "EVENT_STORE_URL": f"sqlite:///{data_dir / 'events.sqlite'}",
                "REDIS_URL": valkey.url,
                "REDIS_PREFIX": redis_prefix,
            }
            admin = (data_dir / "admin.token").read_text().strip()
            yield Deployment(valkey, server, env, admin)
    finally:
        valkey.kill()


def place_sample(deployed: Deployment, first_id: int) -> None:
    """Register customers first_id.. and place orders, then wait until all are readable."""
    base, auth = deployed.server.base_url, {"Authorization": f"Token {deployed.admin}"}
    position = 0
    for customer_id in range(first_id, first_id + CUSTOMER_COUNT):
        body = {"id": customer_id, "first_name": f"Customer {customer_id}", "last_name": "Kept"}
        registered = local_http.post(f"{base}/api/customers", json=body, headers=auth)
        assert registered.status_code == 201, registered.text
        for cents in (1999, 250, 100_001):
            order = {"customer_id": customer_id, "amount": f"{cents / 100:.2f}"}
            placed = local_http.post(f"{base}/api/orders", json=order, headers=auth)
            assert placed.status_code == 201, placed.text
            position = placed.json()["position"]
    last = first_id + CUSTOMER_COUNT - 1
    read = deployed.get(last, deployed.admin, **{"X-Min-Position": str(position)})
    assert read.status_code == 200, read.text


def add_orders(deployed: Deployment, customer_ids: range) -> None:
    base, auth = deployed.server.base_url, {"Authorization": f"Token {deployed.admin}"}
    position = 0
    for customer_id in customer_ids:
        order = {"customer_id": customer_id, "amount": "7.77"}
        placed = local_http.post(f"{base}/api/orders", json=order, headers=auth)
        assert placed.status_code == 201, placed.text
        position = placed.json()["position"]
    read = deployed.get(customer_ids[-1], deployed.admin, **{"X-Min-Position": str(position)})
    assert read.status_code == 200, read.text


@dataclass
class ReaderLoop:
    """Reads every customer in turn with `key` (and with `revoked`) until stopped."""

    deployed: Deployment
    key: str
    expected: dict[int, dict[str, Any]]
    revoked: str | None = None
    statuses: Counter[int] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    revoked_let_in: int = 0
    readiness: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ReaderLoop:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def summary(self) -> str:
        return f"answers {dict(self.statuses)}, /readyz read_model {dict(self.readiness)}"

    def _run(self) -> None:
        ids = sorted(self.expected)
        with httpx.Client(base_url=self.deployed.server.base_url, timeout=10) as client:
            for count in range(MAX_READS):
                if self._stop.is_set():
                    return
                customer_id = ids[count % len(ids)]
                self._check(client, customer_id)
                if self.revoked is not None:
                    answer = client.get(
                        f"/api/customers/{customer_id}",
                        headers={"Authorization": f"Token {self.revoked}"},
                    )
                    self.revoked_let_in += answer.status_code == 200
                if count % 20 == 0:
                    ready = client.get("/readyz").json()
                    self.readiness[str(ready.get("read_model", "absent")).split(":")[0]] += 1

    def _check(self, client: httpx.Client, customer_id: int) -> None:
        answer = client.get(
            f"/api/customers/{customer_id}", headers={"Authorization": f"Token {self.key}"}
        )
        self.statuses[answer.status_code] += 1
        if answer.status_code == 503:
            return
        if answer.status_code != 200 or answer.json() != self.expected[customer_id]:
            self.wrong.append(f"{customer_id}: {answer.status_code} {answer.text}")


def repaired(deployed: Deployment, key: str, expected: dict[int, dict[str, Any]]) -> bool:
    for customer_id, document in expected.items():
        answer = deployed.get(customer_id, key)
        if answer.status_code != 200 or answer.json() != document:
            return False
    return True


def repair_seconds(deployed: Deployment, key: str, expected: dict[int, dict[str, Any]]) -> float:
    started = time.monotonic()
    assert wait_until(lambda: repaired(deployed, key, expected), deadline=REPAIR_DEADLINE_SECONDS)
    return time.monotonic() - started


def assert_audit_clean(deployed: Deployment) -> None:
    audited = deployed.cli("audit")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "audit clean" in audited.stdout


def assert_reads_never_wrong(reader: ReaderLoop) -> None:
    assert not reader.wrong, reader.wrong[:5]
    assert set(reader.statuses) <= {200, 503}, reader.statuses
    assert reader.statuses[200] > 0
    assert reader.revoked_let_in == 0


def test_redis_restarted_empty_is_refilled_and_never_served_half_empty(
    tmp_path: Path, redis_prefix: str
) -> None:
    with deployment(tmp_path, redis_prefix) as deployed:
        # Customers with orders are projected; a staff key reads them.
        place_sample(deployed, first_id=1)
        staff = deployed.new_key("staff", "staff-empty")
        expected = deployed.expected()
        assert wait_until(lambda: repaired(deployed, staff, expected))

        with ReaderLoop(deployed, staff, expected) as reader:
            assert wait_until(lambda: reader.statuses[200] >= 20)
            # Redis dies, loses its append-only file and comes back empty.
            deployed.valkey.kill()
            deployed.valkey.wipe()
            deployed.valkey.start()
            seconds = repair_seconds(deployed, staff, expected)
            assert wait_until(lambda: reader.statuses[200] >= 100)

        print(f"\nrestarted empty: repaired in {seconds:.2f} s; {reader.summary()}")
        assert_reads_never_wrong(reader)
        assert "read model lost data" in deployed.server.log
        assert "read model repaired" in deployed.server.log
        assert_audit_clean(deployed)


def test_redis_restored_from_an_older_copy_never_honours_a_revoked_key(
    tmp_path: Path, redis_prefix: str
) -> None:
    with deployment(tmp_path, redis_prefix) as deployed:
        place_sample(deployed, first_id=1)
        staff = deployed.new_key("staff", "staff-restore")
        soon_revoked = deployed.new_key("staff", "leaver")
        assert wait_until(lambda: deployed.get(1, soon_revoked).status_code == 200)

        # A backup of Redis's files while the leaver's key is still valid.
        deployed.valkey.stop()
        backup = tmp_path / "backup"
        deployed.valkey.copy_files_to(backup)
        deployed.valkey.start()
        assert wait_until(lambda: deployed.get(1, soon_revoked).status_code == 200)

        # The key is revoked, and more customers and orders are written after the backup.
        assert deployed.cli("tokens", "revoke", "leaver").returncode == 0
        assert wait_until(lambda: deployed.get(1, soon_revoked).status_code == 401)
        place_sample(deployed, first_id=101)
        add_orders(deployed, range(1, 1 + CUSTOMER_COUNT))
        expected = deployed.expected()
        assert wait_until(lambda: repaired(deployed, staff, expected))

        with ReaderLoop(deployed, staff, expected, revoked=soon_revoked) as reader:
            assert wait_until(lambda: reader.statuses[200] >= 20)
            # Redis is restored from the backup: older totals, fewer customers, the key valid.
            deployed.valkey.kill()
            deployed.valkey.restore_files_from(backup)
            deployed.valkey.start()
            seconds = repair_seconds(deployed, staff, expected)
            assert wait_until(lambda: reader.statuses[200] >= 100)

        print(f"\nrestored from a copy: repaired in {seconds:.2f} s; {reader.summary()}")
        assert_reads_never_wrong(reader)
        assert deployed.get(1, soon_revoked).status_code == 401
        assert_audit_clean(deployed)


def test_redis_flushed_while_running_is_refilled_and_never_served_empty(
    tmp_path: Path, redis_prefix: str
) -> None:
    with deployment(tmp_path, redis_prefix) as deployed:
        place_sample(deployed, first_id=1)
        staff = deployed.new_key("staff", "staff-flush")
        expected = deployed.expected()
        assert wait_until(lambda: repaired(deployed, staff, expected))

        with ReaderLoop(deployed, staff, expected) as reader:
            assert wait_until(lambda: reader.statuses[200] >= 20)
            # Everything is flushed on the live server: no restart, no reconnect.
            deployed.valkey.client().flushall()
            seconds = repair_seconds(deployed, staff, expected)
            assert wait_until(lambda: reader.statuses[200] >= 100)

        print(f"\nflushed: repaired in {seconds:.2f} s; {reader.summary()}")
        assert_reads_never_wrong(reader)
        assert "read model lost data" in deployed.server.log
        assert_audit_clean(deployed)


def test_reads_during_live_writes_are_never_taken_for_a_loss(
    tmp_path: Path, redis_prefix: str
) -> None:
    # Positions announced while a refresh is in flight, and customers not projected yet,
    # are ordinary: neither may turn into a 503 that looks like a repair.
    with deployment(tmp_path, redis_prefix) as deployed:
        place_sample(deployed, first_id=1)
        base, auth = deployed.server.base_url, {"Authorization": f"Token {deployed.admin}"}
        statuses: Counter[int] = Counter()
        with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
            for step in range(300):
                order = {"customer_id": 1 + step % CUSTOMER_COUNT, "amount": "1.00"}
                assert client.post("/api/orders", json=order).status_code == 201
                statuses[client.get(f"/api/customers/{1 + step % CUSTOMER_COUNT}").status_code] += 1
                # An id registered a moment ago may not be projected yet: 404, never 503.
                registered = client.post("/api/customers", json={"first_name": f"New {step}"})
                assert registered.status_code == 201
                statuses[client.get(f"/api/customers/{registered.json()['id']}").status_code] += 1
        assert set(statuses) <= {200, 404}, statuses
        assert "read model lost data" not in deployed.server.log


def test_serve_brings_its_embedded_redis_back_when_it_dies(
    tmp_path: Path, redis_prefix: str
) -> None:
    data_dir = tmp_path / "data"
    with serve(data_dir, None, redis_prefix) as server:
        admin = (data_dir / "admin.token").read_text().strip()
        env = {**os.environ, "DATA_DIR": str(data_dir), "REDIS_PREFIX": redis_prefix}
        deployed = Deployment(ValkeyProcess(tmp_path / "unused"), server, env, admin)
        place_sample(deployed, first_id=1)
        expected = deployed.expected_at(data_dir)
        state = data_dir / "redis" / "server.json"
        first_pid = json.loads(state.read_text())["pid"]

        # The embedded Redis dies (kill -9): serve starts it again from its AOF, alone.
        os.kill(first_pid, signal.SIGKILL)
        seconds = repair_seconds(deployed, admin, expected)
        second_pid = json.loads(state.read_text())["pid"]
        print(f"\nembedded Redis killed: serving again in {seconds:.2f} s")
        assert second_pid != first_pid
        assert "embedded Redis exited" in server.log
        # The supervisor logs the restart after the server answers, so reads can be back
        # a moment before that line reaches the log.
        assert wait_until(lambda: "embedded Redis restarted" in server.log)
