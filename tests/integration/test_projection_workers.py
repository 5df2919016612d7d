"""Several projector processes share the read model's slices through PostgreSQL.

Each scenario runs real `customers project` processes against real PostgreSQL and Redis
(or a real Valkey cluster) and ends the same way: the read model is the pure fold of the
event store and `customers audit` finds nothing wrong — whatever happened to the workers.
Takeover times are measured and printed (`pytest -s`); the benchmark reports them too.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import psycopg
import pytest
import redis
from psycopg import sql
from rich.console import Console

from projections.read_model import SLICES, Keys
from projections.redis_client import connect
from runtime.demo_store import append_sample
from tests.support.projection_helpers import (
    all_projected,
    applied_position,
    customer_service,
    folded,
    wait_until,
)
from tests.support.servers import postgres_admin_url
from tests.support.valkey_cluster import ValkeyCluster
from write_side.application import CustomerService

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]


def cli_env(store_url: str, redis_url: str, prefix: str, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "EVENT_STORE_URL": store_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT),
    }


def start_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from runtime.cli import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, as an operator stops a projector; its stderr."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=30)
    return errors


def slice_owners(store_url: str, group: str) -> list[int | None]:
    """Per slice, the pid of the worker holding it in PostgreSQL (None: nobody)."""
    schema = dict(parse_qsl(urlparse(store_url).query))["schema"]
    query = sql.SQL("SELECT owner FROM {}.projection_slices WHERE read_model = %s ORDER BY slice")
    with psycopg.connect(postgres_admin_url(), autocommit=True) as conn:
        try:
            rows = conn.execute(query.format(sql.Identifier(schema)), (group,)).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    return [None if owner is None else int(owner.split(":")[1]) for (owner,) in rows]


def shares(store_url: str, group: str) -> Counter[int | None]:
    return Counter(slice_owners(store_url, group))


def audit_is_clean(env: dict[str, str]) -> None:
    audit = start_cli(env, "audit")
    output, errors = audit.communicate(timeout=120)
    assert audit.returncode == 0, output + errors
    assert "audit clean" in output


@contextmanager
def writing_load(store_url: str) -> Iterator[None]:
    """Customers with their orders appended in a loop, by another writer, until the end."""
    done = threading.Event()

    def write() -> None:
        with customer_service(store_url) as writer:
            seed = 100
            while not done.is_set():
                seed += 1
                append_sample(writer, 10, seed=seed, progress_console=Console(file=io.StringIO()))

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=60)


def seeded(service: CustomerService, customers: int) -> int:
    append_sample(service, customers, seed=7, progress_console=Console(file=io.StringIO()))
    head = service.recorder.max_notification_id()
    assert head is not None
    return head


def wait_for_head(client: redis.Redis, keys: Keys, service: CustomerService) -> None:
    head = service.recorder.max_notification_id() or 0
    wait_until(lambda: applied_position(client, keys) >= head, "every slice caught up", 60)


@pytest.fixture(params=["redis", "valkey-cluster"])
def read_model(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> tuple[str, redis.Redis, Keys]:
    """The read model's URL, a client and its keys: one Redis, or a 3+3 Valkey cluster."""
    if request.param == "redis":
        return redis_url, redis.Redis.from_url(redis_url), Keys(redis_prefix)
    cluster: ValkeyCluster = request.getfixturevalue("shared_valkey_cluster")
    client: Any = connect(cluster.url)
    return cluster.url, client, Keys(f"workers-{redis_prefix}")


def test_two_workers_take_half_the_slices_each_and_project_the_pure_fold(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    env = cli_env(postgres_url, redis_url, redis_prefix, tmp_path)
    with customer_service(postgres_url) as service:
        seeded(service, 200)

        # One `project --workers 2` starts two workers; they split the 16 slices 8 and 8.
        parent = start_cli(env, "project", "--workers", "2", "--page-size", "50")
        try:
            wait_until(
                lambda: sorted(shares(postgres_url, redis_prefix).values()) == [8, 8],
                "each worker holds 8 slices",
                30,
            )
            wait_for_head(client, keys, service)
            assert all_projected(client, keys) == folded(service)

            # Appended while they run: both follow, and the slices stay where they are.
            append_sample(service, 30, seed=8, progress_console=Console(file=io.StringIO()))
            wait_for_head(client, keys, service)
            assert all_projected(client, keys) == folded(service)
            assert sorted(shares(postgres_url, redis_prefix).values()) == [8, 8]
        finally:
            stop(parent)
        assert parent.returncode == 0
        # Stopped workers give their slices back on the way out.
        assert set(slice_owners(postgres_url, redis_prefix)) == {None}
        audit_is_clean(env)


def test_a_worker_joining_takes_its_share_and_a_worker_leaving_hands_its_slices_over(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    env = cli_env(postgres_url, redis_url, redis_prefix, tmp_path)
    with customer_service(postgres_url) as service:
        seeded(service, 100)
        first = start_cli(env, "project")
        second = None
        try:
            wait_until(
                lambda: shares(postgres_url, redis_prefix) == {first.pid: SLICES},
                "the only worker holds every slice",
                30,
            )
            with writing_load(postgres_url):
                # A second worker joins mid-load: the first hands over half.
                second = start_cli(env, "project")
                wait_until(
                    lambda: shares(postgres_url, redis_prefix) == {first.pid: 8, second.pid: 8},
                    "the slices are rebalanced 8 and 8",
                    30,
                )
                # The first leaves (SIGTERM): the second takes everything at once.
                stop(first)
                wait_until(
                    lambda: shares(postgres_url, redis_prefix) == {second.pid: SLICES},
                    "the remaining worker holds every slice",
                    30,
                )
            wait_for_head(client, keys, service)
            assert all_projected(client, keys) == folded(service)
        finally:
            stop(first)
            if second is not None:
                stop(second)
        audit_is_clean(env)


@dataclass
class Faulted:
    """Two workers sharing the slices, one of them faulted mid-load; how long the other
    took to hold every slice."""

    faulted: subprocess.Popen[str]
    other: subprocess.Popen[str]
    takeover: float = 0.0
    faulted_errors: str = ""


@contextmanager
def one_of_two_workers_faulted(
    fault: signal.Signals, env: dict[str, str], client: redis.Redis, service: CustomerService
) -> Iterator[Faulted]:
    """Two workers with small pages (so the fault lands mid catch-up) share the slices; a
    writer appends meanwhile; at a quarter of the way one gets `fault`, and the other
    takes every slice over. Inside: still under load. After: every slice at the head."""
    store_url, group = env["EVENT_STORE_URL"], env["REDIS_PREFIX"]
    head = service.recorder.max_notification_id() or 0
    workers = Faulted(
        start_cli(env, "project", "--page-size", "20"),
        start_cli(env, "project", "--page-size", "20"),
    )
    faulted, other = workers.faulted, workers.other
    try:
        wait_until(
            lambda: shares(store_url, group) == {faulted.pid: 8, other.pid: 8},
            "both workers hold their 8 slices",
            30,
        )
        with writing_load(store_url):
            keys = Keys(group)
            wait_until(lambda: applied_position(client, keys) >= head // 4, "a quarter done")
            faulted.send_signal(fault)
            faulted_at = time.monotonic()
            wait_until(
                lambda: shares(store_url, group) == {other.pid: SLICES},
                "the other worker took every slice over",
                30,
            )
            workers.takeover = time.monotonic() - faulted_at
            assert applied_position(client, keys) < (service.recorder.max_notification_id() or 0)
            yield workers
        wait_for_head(client, keys, service)
    finally:
        workers.faulted_errors = stop(faulted)
        stop(other)
    print(f"\ntakeover after {fault.name}: {workers.takeover:.2f} s")


def test_a_worker_killed_9_mid_load_is_taken_over_and_nothing_is_lost_or_counted_twice(
    postgres_url: str, read_model: tuple[str, redis.Redis, Keys], tmp_path: Path
) -> None:
    url, client, keys = read_model
    env = cli_env(postgres_url, url, keys.prefix, tmp_path)
    with customer_service(postgres_url) as service:
        seeded(service, 300)
        with one_of_two_workers_faulted(signal.SIGKILL, env, client, service):
            pass  # the survivor applies the rest, and what the writer appends
        assert all_projected(client, keys) == folded(service)
        audit_is_clean(env)


def test_a_hung_worker_is_taken_over_and_when_it_wakes_it_is_fenced_and_changes_nothing(
    postgres_url: str, read_model: tuple[str, redis.Redis, Keys], tmp_path: Path
) -> None:
    url, client, keys = read_model
    env = cli_env(postgres_url, url, keys.prefix, tmp_path)
    with customer_service(postgres_url) as service:
        seeded(service, 300)
        # SIGSTOP: the process keeps its PostgreSQL session, but stops renewing its lease.
        with one_of_two_workers_faulted(signal.SIGSTOP, env, client, service) as workers:
            hung, other = workers.faulted, workers.other
            # It wakes mid-page, holding tokens that are no longer the newest: its writes
            # are refused, and it rejoins and gets its share back under new tokens.
            hung.send_signal(signal.SIGCONT)
            wait_until(
                lambda: shares(postgres_url, keys.prefix) == {hung.pid: 8, other.pid: 8},
                "the woken worker has its share again",
                30,
            )
        assert all_projected(client, keys) == folded(service)
        assert hung.returncode == 0, workers.faulted_errors
        audit_is_clean(env)


def test_two_workers_on_a_valkey_cluster_project_the_pure_fold(
    shared_valkey_cluster: ValkeyCluster, postgres_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    cluster = shared_valkey_cluster
    client = connect(cluster.url)
    keys = Keys(f"workers-{redis_prefix}")
    env = cli_env(postgres_url, cluster.url, keys.prefix, tmp_path)
    with customer_service(postgres_url) as service:
        seeded(service, 150)
        parent = start_cli(env, "project", "--workers", "2", "--page-size", "50")
        try:
            wait_until(
                lambda: sorted(shares(postgres_url, keys.prefix).values()) == [8, 8],
                "each worker holds 8 slices",
                30,
            )
            with writing_load(postgres_url):
                wait_until(lambda: applied_position(client, keys) > 0, "projection started")  # type: ignore[arg-type]
            wait_for_head(client, keys, service)  # type: ignore[arg-type]
            assert all_projected(client, keys) == folded(service)  # type: ignore[arg-type]
        finally:
            stop(parent)
        audit_is_clean(env)


def test_sqlite_has_one_projector_and_a_second_is_refused_with_a_clear_line(
    sqlite_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = cli_env(sqlite_url, redis_url, redis_prefix, tmp_path)
    with customer_service(sqlite_url) as service:
        seeded(service, 5)
    first = start_cli(env, "project")
    try:
        assert first.stderr is not None
        assert "projecting" in first.stderr.readline()

        second = start_cli(env, "project")
        _, errors = second.communicate(timeout=60)
        assert second.returncode == 2
        assert errors.strip().splitlines() == [
            f"error: a projector is already running on this SQLite event store (pid "
            f"{first.pid} on {os.uname().nodename}); SQLite has one projector: stop that "
            "one, or use PostgreSQL to run several"
        ]

        several = start_cli(env, "project", "--workers", "2")
        _, errors = several.communicate(timeout=60)
        assert several.returncode == 2
        assert errors.strip().splitlines() == [
            "error: --workers: SQLite has one projector; several workers share the "
            "projection through a PostgreSQL event store (EVENT_STORE_URL)"
        ]
    finally:
        stop(first)
    assert first.returncode == 0

    # Once the first has stopped, a projector starts again.
    again = start_cli(env, "project")
    try:
        assert again.stderr is not None
        assert "projecting" in again.stderr.readline()
    finally:
        stop(again)


class Tokens:
    """A share that offers every slice with one fencing token (as a group would grant)."""

    version = 0

    def __init__(self, token: int) -> None:
        self.token = token

    def offered(self) -> dict[int, int]:
        return dict.fromkeys(range(SLICES), self.token)

    def released(self, slices: frozenset[int]) -> None:
        pass

    def outdated(self, slice_number: int, held: int) -> None:
        pass  # a newer owner holds it: this share is the stale one


def read_model_dump(client: redis.Redis, keys: Keys) -> dict[bytes, bytes | None]:
    names = [*client.scan_iter(match=f"{{{keys.prefix}*", count=1000)]
    names += client.scan_iter(match=f"{keys.prefix}:*", count=1000)
    return {name: client.dump(name) for name in sorted(names)}


def test_a_stale_worker_holding_older_tokens_is_refused_and_changes_nothing(
    postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    from projections.projector import Projector

    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(postgres_url) as service:
        seeded(service, 40)
        # Worker A holds every slice with token 1 and catches up.
        stale = Projector(service.recorder, client, keys, share=Tokens(1), publish=False)
        stale.catch_up()
        assert all_projected(client, keys) == folded(service)

        # More is appended; A is taken for dead and B claims every slice with token 2.
        append_sample(service, 20, seed=9, progress_console=Console(file=io.StringIO()))
        newer = Projector(service.recorder, client, keys, share=Tokens(2), publish=False)
        newer.verify()
        newer.owned.sync(client, keys, newer.tracking)  # type: ignore[union-attr]
        before = read_model_dump(client, keys)

        # A wakes and applies the new events with its old tokens: every call is refused.
        stale.catch_up()
        assert read_model_dump(client, keys) == before
        assert stale.owned is not None
        assert stale.owned.tokens == {}

        # B applies them: exactly the fold.
        newer.catch_up()
        assert all_projected(client, keys) == folded(service)


def test_rebuild_with_two_workers_switches_to_the_pure_fold_while_workers_project_live(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    from projections.generation import current_generation

    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    env = cli_env(postgres_url, redis_url, redis_prefix, tmp_path)
    with customer_service(postgres_url) as service:
        seeded(service, 200)
        live = start_cli(env, "project", "--workers", "2")
        try:
            wait_for_head(client, keys, service)
            with writing_load(postgres_url):
                # Two processes fill generation 2, each its slices; then it is switched to.
                rebuilding = start_cli(env, "rebuild", "--workers", "2")
                _, errors = rebuilding.communicate(timeout=240)
                assert rebuilding.returncode == 0, errors
                assert "rebuilt generation 2" in errors
            assert current_generation(client, keys) == 2
            # The live workers follow the switch and go on in generation 2.
            wait_for_head(client, keys, service)
            assert all_projected(client, keys) == folded(service)
        finally:
            stop(live)
        audit_is_clean(env)


def test_rebuild_with_workers_on_sqlite_gives_the_pure_fold(
    sqlite_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    env = cli_env(sqlite_url, redis_url, redis_prefix, tmp_path)
    with customer_service(sqlite_url) as service:
        seeded(service, 60)
        rebuilding = start_cli(env, "rebuild", "--workers", "3")
        _, errors = rebuilding.communicate(timeout=240)
        assert rebuilding.returncode == 0, errors
        assert all_projected(client, keys) == folded(service)
    audit_is_clean(env)


def test_serve_is_the_one_projector_of_its_sqlite_store_and_project_beside_it_is_refused(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from runtime.processes import free_port
    from tests.support.serve_process import serve

    data_dir = tmp_path / "data"
    sqlite_url = f"sqlite:///{data_dir / 'events.sqlite'}"
    env = cli_env(sqlite_url, redis_url, redis_prefix, data_dir)
    expected = (
        "error: a projector is already running on this SQLite event store (pid {pid} on "
        f"{os.uname().nodename}); SQLite has one projector: stop that one, or use "
        "PostgreSQL to run several"
    )
    # `customers serve` projects in its own process: a `customers project` beside it would
    # only apply every page again, so it is refused, naming serve.
    with serve(data_dir, redis_url, redis_prefix) as running:
        beside = start_cli(env, "project")
        _, errors = beside.communicate(timeout=60)
        assert beside.returncode == 2
        assert errors.strip().splitlines() == [expected.format(pid=running.process.pid)]
        assert running.stop() == 0

    # And the other way round: serve refuses to start beside a running projector.
    projector = start_cli(env, "project")
    try:
        assert projector.stderr is not None
        assert "projecting" in projector.stderr.readline()
        refused = subprocess.run(
            [str(Path(sys.executable).with_name("customers")), "serve"],
            env={**env, "PORT": str(free_port())},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1] == expected.format(pid=projector.pid)
    finally:
        stop(projector)
