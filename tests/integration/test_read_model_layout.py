"""Versions that encode records differently never read or write each other's generation."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import subprocess
import sys

import pytest
import redis
from rich.console import Console

from projections.generation import LayoutMismatchError
from projections.projector import Projector
from projections.read_model import LAYOUT, LAYOUT_FIELD, Keys
from projections.rebuild import rebuild
from read_side.customer_reader import UNAVAILABLE, CustomerReader
from read_side.projection_state import ProjectionState
from read_side.redis_link import RedisLink
from runtime.demo_store import append_sample
from tests.support.projection_helpers import customer_service
from tests.support.read_model_records import put_api_key, put_customer, set_applied_position

pytestmark = pytest.mark.redis

# Layout 1: one JSON record per customer hash, as versions before partitions wrote it.
OTHER_LAYOUT = "1:first_name,last_name,email,mobile_number,national_code,birth_date,gender,notes"


def test_the_projector_records_its_layout_in_the_generation_it_writes(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        Projector(service.recorder, client, keys).catch_up()
    assert client.hget(keys.tracking(1), LAYOUT_FIELD) == LAYOUT.encode()


def test_a_projector_refuses_a_generation_written_in_another_layout(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    client.hset(keys.tracking(1), LAYOUT_FIELD, OTHER_LAYOUT)
    with (
        customer_service(event_store_url) as service,
        pytest.raises(LayoutMismatchError) as refused,
    ):
        Projector(service.recorder, client, keys)
    assert OTHER_LAYOUT in str(refused.value)
    assert "customers rebuild" in str(refused.value)


def test_customers_project_says_so_in_one_line(cli_env: dict[str, str]) -> None:
    client = redis.Redis.from_url(cli_env["REDIS_URL"])
    keys = Keys(cli_env["REDIS_PREFIX"])
    with customer_service(cli_env["EVENT_STORE_URL"]) as service:
        append_sample(service, 2, seed=3, progress_console=Console(file=io.StringIO()))
    client.set(keys.generation, "1")
    client.hset(keys.tracking(1), LAYOUT_FIELD, OTHER_LAYOUT)
    finished = subprocess.run(
        [sys.executable, "-c", "from runtime.cli import main; main()", "project"],
        env={**_environment(), **cli_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stderr.count("\n") == 1, finished.stderr
    assert finished.stderr.startswith("error: REDIS_URL: generation 1 of the read model is in")


def test_a_reader_answers_503_and_says_why_for_a_generation_in_another_layout(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    keys = Keys(redis_prefix)
    client = redis.Redis.from_url(redis_url)
    put_customer(client, keys, 7, position=3, first_name="Ada")
    put_api_key(client, keys, "staff-key", "staff", position=2)
    set_applied_position(client, keys, 10, announce=False)

    async def read_twice() -> tuple[int, int, str | None, bytes]:
        link = RedisLink(redis_url)
        state = ProjectionState(link, keys, redis_url=redis_url, refresh_interval=3600)
        reader = CustomerReader(link, state, keys)
        try:
            await state.refresh()
            before = (await reader.reply("7", "Token staff-key")).status
            client.hset(keys.tracking(1), LAYOUT_FIELD, OTHER_LAYOUT)
            await state.refresh()
            refused = await reader.reply("7", "Token staff-key")
            return before, refused.status, state.trouble, refused.body
        finally:
            await link.close()

    with caplog.at_level(logging.ERROR, logger="customers.read"):
        before, after, trouble, body = asyncio.run(read_twice())
    assert before == 200
    assert after == 503
    assert UNAVAILABLE.encode() in body
    assert trouble is not None
    assert OTHER_LAYOUT in trouble
    assert any(OTHER_LAYOUT in record.getMessage() for record in caplog.records)


def _environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("REDIS")}


def test_a_rebuild_moves_a_read_model_in_another_layout_to_this_one(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    client.set(keys.generation, "1")
    client.hset(keys.tracking(1), LAYOUT_FIELD, OTHER_LAYOUT)
    with customer_service(event_store_url) as service:
        append_sample(service, 3, seed=5, progress_console=Console(file=io.StringIO()))
        result = rebuild(service.recorder, client, keys, drop_grace=0)
        Projector(service.recorder, client, keys).catch_up()  # the upgraded projector starts
    assert result.new_generation == 2
    assert client.get(keys.generation) == b"2"
    assert client.hget(keys.tracking(2), LAYOUT_FIELD) == LAYOUT.encode()
