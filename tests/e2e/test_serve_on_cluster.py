"""`customers serve` on a real 3-master + 3-replica Valkey Cluster, through a master's failure.

REDIS_URL names one master. Producers place orders over HTTP without pause while staff
read; then one master is killed with -9 (or hung with SIGSTOP) in the middle of it, and a
replica takes its slots over. Afterwards the projection has caught up, every order the
service acknowledged is counted exactly once, every read equals the pure fold of the
event store, and `customers audit` is clean. During the fault, customers on the other
masters stay readable and those on the failed one answer 503, never a wrong document.
The times from the fault to the cluster's takeover and to the service reading and
projecting again are printed (`-s`); the issue's goal is the node timeout + 1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from projections.read_model import BUCKET_SIZE, Keys
from projections.replay import history
from runtime.event_store import open_customer_service
from tests.support import local_http
from tests.support.serve_process import ServeProcess, serve
from tests.support.valkey_cluster import ValkeyCluster, ValkeyNode
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.redis]

CUSTOMERS = str(Path(sys.executable).with_name("customers"))
CUSTOMER_COUNT = 40
CUSTOMERS_ONE_PER_BUCKET = range(1, CUSTOMER_COUNT + 1, BUCKET_SIZE)
RECOVERY_DEADLINE_SECONDS = 30.0


@dataclass
class Deployment:
    cluster: ValkeyCluster
    server: ServeProcess
    env: dict[str, str]
    staff: str = ""
    producer: str = ""
    acknowledged: Counter[int] = field(default_factory=Counter)
    answers: Counter[int] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CUSTOMERS, *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def read(self, customer_id: int) -> httpx.Response:
        return local_http.get(
            f"{self.server.base_url}/api/customers/{customer_id}",
            headers={"Authorization": f"Token {self.staff}"},
            timeout=10,
        )

    def place_order(self, customer_id: int) -> int:
        response = local_http.post(
            f"{self.server.base_url}/api/orders",
            json={"customer_id": customer_id, "amount": "10.00", "order_id": uuid.uuid4().hex},
            headers={"Authorization": f"Token {self.producer}"},
            timeout=10,
        )
        if response.status_code == 201:
            self.acknowledged[customer_id] += 1
        return response.status_code

    def expected(self) -> dict[int, dict[str, Any]]:
        service = open_customer_service(self.env["EVENT_STORE_URL"])
        try:
            return history(service.recorder, set())
        finally:
            service.close()

    def caught_up(self) -> bool:
        ready = local_http.get(f"{self.server.base_url}/readyz", timeout=5).json()
        return bool(
            ready.get("projection_position")
            and ready["projection_position"] == ready.get("event_store_position")
        )


@contextmanager
def deployment(cluster: ValkeyCluster, tmp_path: Path) -> Iterator[Deployment]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    prefix = _prefix_on_every_master(cluster)
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "EVENT_STORE_URL": f"sqlite:///{data_dir / 'events.sqlite'}",
        "REDIS_URL": cluster.url,
        "REDIS_PREFIX": prefix,
    }
    seeded = subprocess.run(
        [CUSTOMERS, "demo", "--customers", str(CUSTOMER_COUNT)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    with serve(data_dir, cluster.url, prefix) as server:
        running = Deployment(cluster, server, env)
        running.staff = _new_key(running, "staff")
        running.producer = _new_key(running, "producer")
        assert wait_until(running.caught_up, deadline=RECOVERY_DEADLINE_SECONDS), server.log
        yield running


def _new_key(running: Deployment, role: str) -> str:
    created = running.cli("tokens", "create", "--role", role, "--name", f"{role}-desk")
    assert created.returncode == 0, created.stderr
    return created.stdout.strip()


def _prefix_on_every_master(cluster: ValkeyCluster) -> str:
    """A fresh prefix whose first customers' partitions lie on every master.

    Customers are kept 16 to a bucket, so the 40 here fill three partitions, which a
    random prefix puts on all three masters only now and then; a larger read model's
    partitions cover every master anyway.
    """
    masters = {m.name for m in cluster.masters()}
    while True:
        keys = Keys(f"c{uuid.uuid4().hex[:8]}")
        holding = {
            cluster.master_for_key(keys.bucket(1, cid)).name for cid in CUSTOMERS_ONE_PER_BUCKET
        }
        if holding == masters:
            return keys.prefix


def _customer_on(cluster: ValkeyCluster, node: ValkeyNode, prefix: str) -> int:
    """A customer whose record lives on `node` (generation 1)."""
    keys = Keys(prefix)
    return next(
        cid
        for cid in range(1, CUSTOMER_COUNT + 1)
        if cluster.master_for_key(keys.bucket(1, cid)).name == node.name
    )


@contextmanager
def traffic(running: Deployment) -> Iterator[None]:
    """Producers and staff at work until the block ends."""
    going = threading.Event()
    going.set()

    def producer() -> None:
        customer_id = 0
        while going.is_set():
            running.place_order(customer_id % CUSTOMER_COUNT + 1)
            customer_id += 1

    def reader() -> None:
        customer_id = 0
        while going.is_set():
            response = running.read(customer_id % CUSTOMER_COUNT + 1)
            running.answers[response.status_code] += 1
            if response.status_code not in (200, 503):
                running.wrong.append(f"{response.status_code} {response.text[:200]}")
            customer_id += 1

    threads = [threading.Thread(target=producer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        going.clear()
        for thread in threads:
            thread.join(30)


def _first_success(check: Callable[[], bool]) -> float:
    assert wait_until(check, deadline=RECOVERY_DEADLINE_SECONDS)
    return time.monotonic()


@pytest.mark.parametrize("fault", ["kill -9", "SIGSTOP", "kill -9 of REDIS_URL's node"])
def test_a_master_failing_mid_projection_loses_no_acknowledged_order_and_reads_recover(
    valkey_cluster: ValkeyCluster, tmp_path: Path, fault: str
) -> None:
    with deployment(valkey_cluster, tmp_path) as running:
        named = running.env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0]
        seed = next(m for m in valkey_cluster.masters() if str(m.port) == named)
        others = [m for m in valkey_cluster.masters() if m.name != seed.name]
        victim = seed if "REDIS_URL" in fault else others[0]
        on_victim = _customer_on(valkey_cluster, victim, running.env["REDIS_PREFIX"])
        before = running.read(on_victim).json()["total_orders"]

        with traffic(running):
            # Orders flow; then the master holding `on_victim` fails under them.
            assert wait_until(lambda: sum(running.acknowledged.values()) >= 50, deadline=30)
            placed_before_fault = sum(running.acknowledged.values())
            if fault.startswith("kill -9"):
                valkey_cluster.kill(victim)
            else:
                valkey_cluster.stop(victim)
            failed_at = time.monotonic()
            acknowledged_at_fault = running.acknowledged[on_victim]
            takeover = valkey_cluster.wait_for_failover(victim)
            # The service reads that customer again, then with an order placed after the
            # fault counted: the projector writes to the replica that took over.
            read_again = _first_success(lambda: running.read(on_victim).status_code == 200)
            projected_again = _first_success(
                lambda: (
                    running.read(on_victim).json().get("total_orders", -1)
                    > before + acknowledged_at_fault
                )
            )
            assert wait_until(
                lambda: sum(running.acknowledged.values()) >= placed_before_fault + 50,
                deadline=RECOVERY_DEADLINE_SECONDS,
            )
        if fault == "SIGSTOP":
            valkey_cluster.cont(victim)  # it wakes up as a replica of its heir
        if "REDIS_URL" in fault:
            # The running service went on without it; a command started now needs the node
            # REDIS_URL names to learn the cluster, so the operator brings it back (a
            # replica now).
            valkey_cluster.restart(victim)

        assert wait_until(running.caught_up, deadline=RECOVERY_DEADLINE_SECONDS), (
            running.server.log[-3000:]
        )
        print(
            f"\n{fault}: cluster takeover {takeover:.2f} s; reads again "
            f"{read_again - failed_at:.2f} s and projection again "
            f"{projected_again - failed_at:.2f} s after the fault; "
            f"answers {dict(running.answers)}; orders acknowledged "
            f"{sum(running.acknowledged.values())}"
        )

        assert running.wrong == []
        expected = running.expected()
        for customer_id, document in expected.items():
            assert running.read(customer_id).json() == document
        # Every acknowledged order is in the store, and counted once by the read model.
        baseline = {cid: doc["total_orders"] for cid, doc in expected.items()}
        assert running.read(on_victim).json()["total_orders"] == baseline[on_victim]
        assert baseline[on_victim] == before + running.acknowledged[on_victim]
        audited = running.cli("audit")
        assert audited.returncode == 0, audited.stdout + audited.stderr
