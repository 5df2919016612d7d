"""The read side tells a Redis that lost data from one that merely moved on meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from projections.read_model import Keys
from read_side.customer_reader import CustomerReader
from read_side.projection_state import ProjectionState
from read_side.redis_link import RedisLink
from tests.support.read_model_records import put_api_key, put_customer, set_applied_position

pytestmark = pytest.mark.redis

Scenario = Callable[[ProjectionState, CustomerReader, redis.Redis, Keys], Awaitable[None]]


def run(redis_url: str, redis_prefix: str, scenario: Scenario) -> None:
    keys = Keys(redis_prefix)
    client = redis.Redis.from_url(redis_url)
    put_customer(client, keys, 7, position=3, first_name="Ada")
    put_api_key(client, keys, "staff-key", "staff", position=2)
    set_applied_position(client, keys, 10, announce=False)

    async def main() -> None:
        link = RedisLink(redis_url)
        state = ProjectionState(link, keys, redis_url=redis_url, refresh_interval=3600)
        await state.refresh()
        try:
            await scenario(state, CustomerReader(link, state, keys), client, keys)
        finally:
            await link.close()

    asyncio.run(main())


def announce_after_the_first_tracking_read(
    state: ProjectionState, client: redis.Redis, keys: Keys, position: int
) -> None:
    """The projector records a page and its announcement lands while a read is in flight."""
    link = state._link
    original = link.execute
    fired: list[bool] = []

    async def execute(*args: Any) -> Any:
        reply = await original(*args)
        if args[0] in ("HGET", "EVAL") and not fired:  # the tracking read
            fired.append(True)
            set_applied_position(client, keys, position, announce=False)
            state.announce(f"1:{position}")
        return reply

    link.execute = execute  # type: ignore[method-assign]


def test_an_announcement_during_a_refresh_is_not_taken_for_a_loss(
    redis_url: str, redis_prefix: str
) -> None:
    async def scenario(
        state: ProjectionState, reader: CustomerReader, client: redis.Redis, keys: Keys
    ) -> None:
        announce_after_the_first_tracking_read(state, client, keys, 11)
        await state.refresh()
        assert state.trouble is None
        assert state.position == 11
        assert (await reader.reply("7", "Token staff-key")).status == 200

    run(redis_url, redis_prefix, scenario)


def test_a_customer_not_there_during_an_announcement_is_404_not_503(
    redis_url: str, redis_prefix: str
) -> None:
    async def scenario(
        state: ProjectionState, reader: CustomerReader, client: redis.Redis, keys: Keys
    ) -> None:
        announce_after_the_first_tracking_read(state, client, keys, 12)
        assert (await reader.reply("999", "Token staff-key")).status == 404
        assert state.trouble is None
        assert (await reader.reply("7", "Token staff-key")).status == 200

    run(redis_url, redis_prefix, scenario)


def test_after_a_loss_the_keys_must_be_read_again_before_anyone_is_let_in(
    redis_url: str, redis_prefix: str
) -> None:
    async def scenario(
        state: ProjectionState, reader: CustomerReader, client: redis.Redis, keys: Keys
    ) -> None:
        # Redis goes back to position 4 (an older copy): noticed at the next refresh.
        set_applied_position(client, keys, 4, announce=False)
        await state.refresh()
        assert state.trouble is not None
        assert (await reader.reply("7", "Token staff-key")).status == 503

        # Announcements of the replay lift the position past what was served before,
        # but the keys in memory are still those of the older copy: not trusted yet.
        state.announce("1:12")
        assert state.position == 12
        assert state.trouble is not None
        assert (await reader.reply("7", "Token staff-key")).status == 503

        # Once the keys are read at that position or later, reads are served again.
        set_applied_position(client, keys, 12, announce=False)
        await state.refresh()
        assert state.trouble is None
        assert (await reader.reply("7", "Token staff-key")).status == 200

    run(redis_url, redis_prefix, scenario)
