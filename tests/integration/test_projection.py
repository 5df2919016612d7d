"""The projector against real stores: catch-up, live, poison events, keys, concurrency."""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import redis
from eventsourcing.persistence import StoredEvent
from rich.console import Console
from typer.testing import CliRunner

from edge.access_policy import hash_key
from projections.dead_letters import record_skip
from projections.event_decoding import UnprojectableEventError
from projections.live_loop import run_live
from projections.projector import Projector
from projections.read_model import Keys
from projections.status import projection_status
from runtime.cli import app
from runtime.demo_store import append_sample
from tests.support.projection_helpers import (
    all_projected,
    applied_position,
    customer_service,
    folded,
    projected,
    wait_until,
)


def quiet() -> Console:
    return Console(file=io.StringIO())


def test_catch_up_projects_every_customer_as_the_plain_fold_does(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 40, seed=7, progress_console=quiet())
        head = service.recorder.max_notification_id()
        # Small pages and chunks so customers span pages and pipelines.
        projector = Projector(service.recorder, client, keys, page_size=13, chunk=4)
        assert projector.catch_up() == head
        assert all_projected(client, keys) == folded(service)
        assert applied_position(client, keys) == head


def test_live_projector_applies_new_events_and_stops_promptly(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        projector = Projector(service.recorder, client, keys)
        stop = threading.Event()
        runner = threading.Thread(target=run_live, args=(projector, stop))
        runner.start()
        try:
            # An append after the projector went live: it wakes (NOTIFY, notify() or poll).
            customer_id = service.register_customer(None, {"first_name": "Live"}).result["id"]
            service.place_order(customer_id, Decimal("19.99"))
            projector.notify()
            wait_until(
                lambda: (projected(client, keys, customer_id) or {}).get("total_spent") == "19.99",
                "the live projector applied the order",
            )
        finally:
            stop.set()
            runner.join(timeout=5)
        assert not runner.is_alive()


def test_poison_event_stops_projection_until_an_operator_skips_it(
    sqlite_url: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(sqlite_url) as service:
        first = service.register_customer(None, {"first_name": "Before"}).result["id"]
        # A producer stored an event nobody here understands.
        service.recorder.insert_events(
            [StoredEvent(uuid.uuid4(), 1, "customers.Martian.Landed", b"{}")]
        )
        poison_position = service.recorder.max_notification_id()
        assert poison_position is not None
        after = service.register_customer(None, {"first_name": "After"}).result["id"]
        projector = Projector(service.recorder, client, keys)

        # The projector applies what precedes the poison event, then stops at it.
        with caplog.at_level(logging.ERROR), pytest.raises(UnprojectableEventError):
            projector.catch_up()
        with pytest.raises(UnprojectableEventError):
            projector.catch_up()  # a retry meets it again but reports it only once
        assert projector.position == poison_position - 1
        assert projected(client, keys, first) is not None
        assert projected(client, keys, after) is None
        logged = [r.getMessage() for r in caplog.records if "projection stopped" in r.message]
        assert len(logged) == 1
        assert f"position {poison_position}" in logged[0]
        assert "unknown topic" in logged[0]
        letters = [json.loads(e) for e in client.lrange(keys.dead_letters, 0, -1)]
        assert [(e["position"], e["reason"]) for e in letters] == [
            (poison_position, "unknown topic")
        ]
        status = projection_status(client, keys, service.recorder)
        assert status["dead_letters"] == 1
        assert status["lag"] == 2

        # The operator steps over it; the decision is recorded; projection resumes.
        record_skip(client, keys, poison_position, "operator-on-call")
        assert projector.catch_up() == poison_position + 1
        assert projected(client, keys, after) is not None
        decision = json.loads(client.hget(keys.skips, str(poison_position)) or b"{}")
        assert decision["skipped_by"] == "operator-on-call"
        assert decision["topic"] == "customers.Martian.Landed"
        assert projection_status(client, keys, service.recorder)["dead_letters"] == 0


def test_skipping_a_position_that_is_not_dead_lettered_is_refused(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(ValueError, match="not in the dead-letter list"):
        record_skip(client, Keys(redis_prefix), 12, "someone")


def test_api_key_index_follows_issue_and_revoke_and_a_replay_never_unrevokes(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(sqlite_url) as service:
        issued = service.issue_api_key("desk", "staff")
        Projector(service.recorder, client, keys).catch_up()
        index = keys.api_keys(1)
        assert json.loads(client.hget(index, hash_key(issued.key)) or b"[]")[1:] == ["staff", 0]

        service.revoke_api_key("desk")
        Projector(service.recorder, client, keys).catch_up()
        # A projector that starts from scratch replays the Issued event: still revoked.
        client.hdel(keys.tracking(1), "customers")
        Projector(service.recorder, client, keys).catch_up()
        entry = json.loads(client.hget(index, hash_key(issued.key)) or b"[]")
        assert entry[1:] == ["staff", 1]


def test_two_projectors_at_once_count_every_event_exactly_once(
    postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(postgres_url) as service:
        append_sample(service, 60, seed=11, progress_console=quiet())
        projectors = [
            Projector(service.recorder, redis.Redis.from_url(redis_url), keys, page_size=size)
            for size in (7, 11)
        ]
        threads = [threading.Thread(target=p.catch_up) for p in projectors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all_projected(client, keys) == folded(service)


def test_project_skip_of_a_position_that_is_not_dead_lettered_is_a_one_line_error(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {
        "EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.sqlite'}",
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "DATA_DIR": str(tmp_path / "data"),
    }
    result = CliRunner().invoke(app, ["project", "--skip", "12"], env=env)
    assert result.exit_code == 2
    assert "position 12 is not in the dead-letter list" in result.output
    assert "Traceback" not in result.output
