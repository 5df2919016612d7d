"""Workers under store faults: Redis errors while taking slices up, a meta node restored
older, a member hung inside its PostgreSQL transaction, tokens left by an earlier group.

Each ends with the read model equal to the pure fold of the event store: nothing skipped,
nothing stalled, nothing counted twice.
"""

from __future__ import annotations

import io
import threading
from typing import Any
from urllib.parse import parse_qsl, urlparse

import psycopg
import pytest
import redis
from rich.console import Console

import projections.tracking as tracking_module
import projections.worker_share as worker_share_module
from projections.projector import Projector
from projections.read_model import SLICES, Keys, slice_field
from projections.worker_group import WorkerGroup
from runtime.demo_store import append_sample
from tests.support.projection_helpers import (
    all_projected,
    applied_position,
    customer_service,
    folded,
    wait_until,
)
from tests.support.servers import postgres_admin_url
from write_side.application import CustomerService

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


class Granted:
    """A share as a group grants it: these slices, with this token, until changed."""

    def __init__(self, slices: range, token: int = 1) -> None:
        self.version = 0
        self.slices = set(slices)
        self.token = token
        self.outdated_seen: dict[int, int] = {}

    def grant(self, slices: range, token: int | None = None) -> None:
        self.slices, self.token = set(slices), token or self.token
        self.version += 1

    def offered(self) -> dict[int, int]:
        return dict.fromkeys(self.slices, self.token)

    def released(self, slices: frozenset[int]) -> None:
        pass

    def outdated(self, slice_number: int, held: int) -> None:
        self.outdated_seen[slice_number] = held


def append(service: CustomerService, customers: int, seed: int) -> None:
    append_sample(service, customers, seed=seed, progress_console=Console(file=io.StringIO()))


def fails_once(real: Any) -> Any:
    """`real`, except that its first call fails as a dropped Redis connection would."""
    calls = 0

    def call(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis.exceptions.ConnectionError("connection reset (injected)")
        return real(*args, **kwargs)

    return call


@pytest.mark.parametrize("failing", ["claiming a slice", "reading the slices' positions"])
def test_a_redis_error_while_taking_up_slices_is_retried_and_nothing_is_skipped(
    failing: str,
    postgres_url: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(postgres_url) as service:
        append(service, 300, seed=7)
        # A worker holds half the slices and catches up; then it is granted all of them.
        share = Granted(range(8))
        worker = Projector(service.recorder, client, keys, share=share, publish=False)
        worker.catch_up()
        share.grant(range(SLICES))
        append(service, 30, seed=8)

        # Taking them up fails once, mid-way, as a connection reset would.
        if failing == "claiming a slice":
            target = worker_share_module.claim_partition
            monkeypatch.setattr(worker_share_module, "claim_partition", fails_once(target))
        else:
            recorder_class = tracking_module.RedisTrackingRecorder
            target = recorder_class.slice_positions
            monkeypatch.setattr(recorder_class, "slice_positions", fails_once(target))
        with pytest.raises(redis.exceptions.ConnectionError):
            worker.catch_up()

        # The next catch-up (the live loop retries) takes them up and applies them all.
        assert worker.catch_up() == service.recorder.max_notification_id()
        assert worker.owned is not None
        assert sorted(worker.owned.tokens) == list(range(SLICES))
        assert applied_position(client, keys) == service.recorder.max_notification_id()
        assert all_projected(client, keys) == folded(service)


def test_a_worker_whose_positions_went_back_replays_them_instead_of_spinning(
    postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(postgres_url) as service:
        append(service, 50, seed=7)
        worker = Projector(service.recorder, client, keys, share=Granted(range(SLICES)))
        worker.catch_up()
        # The meta node comes back from an older copy: every slice's position is lower.
        older = {"customers": "100", **{slice_field(s): "100" for s in range(SLICES)}}
        client.hset(keys.tracking(worker.generation), mapping=older)  # type: ignore[arg-type]
        append(service, 5, seed=8)

        # The worker finds the loss, replays from what Redis holds, and finishes.
        done: list[int] = []
        thread = threading.Thread(target=lambda: done.append(worker.catch_up()), daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert done == [service.recorder.max_notification_id()]
        assert all_projected(client, keys) == folded(service)


def test_tokens_left_by_an_earlier_group_are_overtaken_not_waited_on(
    postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(postgres_url) as service:
        append(service, 40, seed=7)
        # An earlier group's worker left token 9 on every slice.
        Projector(service.recorder, client, keys, share=Granted(range(SLICES), 9)).catch_up()
        append(service, 10, seed=8)

        # A new group (its tables recreated) grants token 1: the claims are refused, and
        # the share is told which token to go above.
        share = Granted(range(SLICES), 1)
        worker = Projector(service.recorder, client, keys, share=share)
        worker.catch_up()
        assert share.outdated_seen == dict.fromkeys(range(SLICES), 9)
        share.grant(range(SLICES), 10)
        assert worker.catch_up() == service.recorder.max_notification_id()
        assert all_projected(client, keys) == folded(service)


def group_connection(store_url: str) -> dict[str, Any]:
    schema = dict(parse_qsl(urlparse(store_url).query))["schema"]
    return {"conninfo": postgres_admin_url(), "options": f"-c search_path={schema}"}


def test_a_group_member_hung_inside_its_transaction_is_taken_over(postgres_url: str) -> None:
    connection = group_connection(postgres_url)
    hung = WorkerGroup(connection, "read-model", name="a")
    other = WorkerGroup(connection, "read-model", name="b")
    hung.start()
    other.start()
    try:
        # a joined first and holds every slice; b has joined, so half of a's are leaving
        # (with no projector here to stop applying them, a never hands them over).
        wait_until(lambda: len(hung.offered()) == 8, "a sees b and offers only its share")
        assert other.offered() == {}
        # Member a stops in the middle of its tick, holding every slice row's lock: its
        # thread halted, its session left inside the tick's transaction.
        hung._stop.set()
        hung._thread.join()
        assert hung._conn is not None
        hung._conn.execute("BEGIN")
        hung._conn.execute("SELECT 1 FROM projection_slices FOR UPDATE")

        # PostgreSQL ends a's session a second later: b's tick goes on, a is dead (its
        # liveness lock went with the session) and b takes every slice.
        wait_until(lambda: len(other.offered()) == SLICES, "b holds every slice", 10)
    finally:
        hung.stop()
        other.stop()
    with psycopg.connect(**connection) as conn:
        owners = conn.execute("SELECT DISTINCT owner FROM projection_slices").fetchall()
    assert owners == [(None,)]
