"""customers migrate: an SQLite store copied into PostgreSQL, every event in order, resumably."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from projections.audit import audit
from projections.projector import Projector
from projections.read_model import Keys
from runtime.cli import app
from runtime.container import Container
from runtime.demo_store import append_sample
from runtime.event_store import open_customer_service
from runtime.http import build_app
from runtime.settings import Settings
from runtime.store_migration import MigrationError, migrate
from write_side.domain.idempotency import IdempotencyRecord

pytestmark = pytest.mark.postgres


def events(url: str) -> list[tuple[Any, ...]]:
    """Every stored event in position order, without the positions themselves."""
    service = open_customer_service(url)
    try:
        found = service.recorder.select_notifications(1, 1_000_000)
        return [(n.originator_id, n.originator_version, n.topic, n.state) for n in found]
    finally:
        service.close()


def fill_sqlite_store(url: str) -> None:
    """Sample customers with orders, refunds and cancellations, plus an Idempotency-Key."""
    container = Container(Settings(EVENT_STORE_URL=url))
    try:
        append_sample(
            container.write_service, 15, seed=71, progress_console=Console(file=io.StringIO())
        )
        key = container.write_service.issue_api_key("orders-service", "producer").key
        with TestClient(build_app(container, write=True, read=False)) as client:
            placed = client.post(
                "/api/orders",
                json={"customer_id": 3, "amount": "4.20"},
                headers={"Authorization": f"Token {key}", "Idempotency-Key": "once"},
            )
            assert placed.status_code == 201, placed.text
    finally:
        container.close()


def test_every_event_is_copied_in_order_then_rebuilt_and_audited_clean(
    tmp_path: Path, postgres_url: str, redis_url: str, redis_prefix: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    fill_sqlite_store(source_url)
    env = {"EVENT_STORE_URL": source_url, "DATA_DIR": str(tmp_path / "data")}

    result = CliRunner().invoke(app, ["migrate", "--to", postgres_url], env=env)
    assert result.exit_code == 0, result.output
    copied = events(postgres_url)
    assert copied == events(source_url)
    assert any(topic == IdempotencyRecord.Recorded.TOPIC for _, _, topic, _ in copied)
    assert "copied" in result.stderr

    # Switched over: the read model rebuilt from the new store is exact.
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    target = open_customer_service(postgres_url)
    try:
        Projector(target.recorder, client, keys).catch_up()
        assert audit(target.recorder, client, keys).clean
    finally:
        target.close()


def test_a_migration_that_stopped_resumes_where_the_target_ends(
    tmp_path: Path, postgres_url: str
) -> None:
    source_url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    fill_sqlite_store(source_url)
    source, target = open_customer_service(source_url), open_customer_service(postgres_url)
    try:
        stopped_at: list[int] = []

        def stop_after_two_pages(position: int, head: int) -> None:
            stopped_at.append(position)
            if len(stopped_at) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            migrate(source.recorder, target.recorder, stop_after_two_pages, page=20)
        resumed = migrate(source.recorder, target.recorder, page=20)
        assert resumed.resumed_after == stopped_at[-1]
        again = migrate(source.recorder, target.recorder, page=20)
        assert again.copied == 0
    finally:
        source.close()
        target.close()
    assert events(postgres_url) == events(source_url)


def test_a_target_holding_other_events_is_refused(tmp_path: Path, postgres_url: str) -> None:
    source_url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    fill_sqlite_store(source_url)
    other = open_customer_service(postgres_url)
    other.register_customer(None, {"first_name": "Elsewhere"})
    source = open_customer_service(source_url)
    try:
        with pytest.raises(MigrationError, match="not in the source"):
            migrate(source.recorder, other.recorder)
    finally:
        source.close()
        other.close()
