"""What an operator runs and watches: dead letters, skips, heartbeat, lag and readiness."""

from __future__ import annotations

import json
import os
import socket
import uuid
from pathlib import Path

import pytest
import redis
from eventsourcing.persistence import StoredEvent
from typer.testing import CliRunner

from projections.event_decoding import UnprojectableEventError
from projections.projector import Projector
from projections.read_model import Keys
from runtime.cli import app
from runtime.container import Container
from runtime.http import build_app
from runtime.settings import Settings
from tests.support import local_http
from tests.support.live_app import serving
from tests.support.projection_helpers import customer_service


def stop_at_a_poison_event(cli_env: dict[str, str]) -> int:
    """A store whose second event nobody here understands; projected up to it."""
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        service.register_customer(None, {"first_name": "Before"})
        service.recorder.insert_events(
            [StoredEvent(uuid.uuid4(), 1, "customers.Martian.Landed", b"{}")]
        )
        poison = service.recorder.max_notification_id()
        assert poison is not None
        service.register_customer(None, {"first_name": "After"})
        with pytest.raises(UnprojectableEventError):
            Projector(service.recorder, client, Keys(cli_env["REDIS_PREFIX"])).catch_up()
    return poison


def test_dead_letters_lists_each_with_its_reason_then_who_skipped_it(
    cli_env: dict[str, str],
) -> None:
    runner = CliRunner()
    assert "no dead letters" in runner.invoke(app, ["dead-letters"], env=cli_env).output

    poison = stop_at_a_poison_event(cli_env)
    listed = runner.invoke(app, ["dead-letters", "--json"], env=cli_env)
    assert listed.exit_code == 0, listed.output
    [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (letter["position"], letter["topic"]) == (poison, "customers.Martian.Landed")
    assert letter["reason"] == "unknown topic"
    assert letter["at"]
    assert letter["skipped_by"] is None

    # --skip records the decision and exits: it does not start projecting.
    skipped = runner.invoke(app, ["project", "--skip", str(poison)], env=cli_env)
    assert skipped.exit_code == 0, skipped.output
    assert "recorded" in skipped.output
    assert "projecting from position" not in skipped.output
    [letter] = [
        json.loads(line)
        for line in runner.invoke(app, ["dead-letters", "--json"], env=cli_env).stdout.splitlines()
    ]
    assert letter["skipped_by"]
    assert letter["skipped_at"]


def test_a_serving_process_reports_its_projector_lag_and_dead_letters(
    cli_env: dict[str, str],
) -> None:
    poison = stop_at_a_poison_event(cli_env)
    settings = Settings(
        EVENT_STORE_URL=cli_env["EVENT_STORE_URL"],
        REDIS_PREFIX=cli_env["REDIS_PREFIX"],
        DATA_DIR=Path(cli_env["DATA_DIR"]),
    )
    container = Container(settings)
    keys = container.redis_keys
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    projector = Projector(container.write_service.recorder, client, keys)
    projector.beat(every=0)  # a projector renews this every second while it runs
    running = [True]
    try:
        app_ = build_app(container, write=True, read=True, redis_url=cli_env["REDIS_URL"])
        app_.state.projector_running = lambda: running[0]
        with serving(app_) as base_url:
            metrics = local_http.get(f"{base_url}/metrics").text
            assert "projector_up 1" in metrics
            assert "projection_dead_letters 1" in metrics
            # Stopped just before the poison event: the one after it is not applied.
            assert f"projection_lag_events {2}" in metrics
            ready = local_http.get(f"{base_url}/readyz").json()
            assert ready["projector"] == "running"
            assert ready["dead_letters"] == 1

            # The projector thread of this process stops: not ready, and it says so.
            running[0] = False
            stopped = local_http.get(f"{base_url}/readyz")
            assert stopped.status_code == 503
            assert stopped.json()["projector"] == "stopped"
    finally:
        container.close()
    assert poison == 2


def test_each_projector_process_beats_in_its_own_hash_as_well_as_the_shared_one(
    cli_env: dict[str, str], sqlite_url: str
) -> None:
    keys = Keys(cli_env["REDIS_PREFIX"])
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    with customer_service(sqlite_url) as service:
        Projector(service.recorder, client, keys).beat(every=0)

    own = client.hgetall(keys.projector_beat(socket.gethostname(), os.getpid()))
    shared = client.hgetall(keys.projector)
    assert own[b"host"] == socket.gethostname().encode()
    assert own[b"pid"] == str(os.getpid()).encode()
    assert own == shared
    assert 0 < client.pttl(keys.projector_beat(socket.gethostname(), os.getpid())) <= 10_000
