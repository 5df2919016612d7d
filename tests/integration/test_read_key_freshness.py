"""A reader waiting for a position sees the keys projected up to it, however it learnt it."""

from __future__ import annotations

import asyncio

import redis

from projections.read_model import Keys
from read_side.customer_reader import CustomerReader
from read_side.projection_state import ProjectionState
from read_side.redis_link import RedisLink
from tests.support.read_model_records import put_api_key, put_customer, set_applied_position


def test_a_key_projected_before_an_announced_position_is_accepted_when_reading_at_it(
    redis_url: str, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    client = redis.Redis.from_url(redis_url)
    put_customer(client, keys, 7, position=3, first_name="Ada")
    set_applied_position(client, keys, 3, announce=False)

    async def scenario() -> int:
        link = RedisLink(redis_url)
        # The cached keys are refreshed rarely here, so only the read itself can refresh them.
        state = ProjectionState(link, keys, redis_url=redis_url, refresh_interval=3600)
        await state.start()
        try:
            # The projector applies a new key and the write it came with, then announces the
            # position; the announcement reaches the reader before any periodic refresh.
            put_api_key(client, keys, "brand-new-key", "staff", position=14)
            set_applied_position(client, keys, 14, announce=False)
            state.announce("1:14")
            assert state.position == 14
            reader = CustomerReader(link, state, keys, min_position_wait=2.0)
            reply = await reader.reply("7", "Token brand-new-key", "14")
            return reply.status
        finally:
            await state.stop()
            await link.close()

    try:
        assert asyncio.run(scenario()) == 200
    finally:
        client.close()
