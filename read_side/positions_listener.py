"""The projector's announcements ("{generation}:{position}" after each page), followed.

The listener subscribes on the node REDIS_URL names and subscribes again whenever the
connection is lost; the read side's periodic refresh keeps positions moving meanwhile, so
a lost announcement only costs a refresh interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

log = logging.getLogger("customers.read")

RESUBSCRIBE_SECONDS = 0.5


async def listen_for_positions(
    redis_url: str, channel: str, announce: Callable[[bytes | str], None]
) -> None:
    """Pass every message on `channel` to `announce`, forever."""
    lost = False
    while True:
        client = aioredis.Redis.from_url(
            redis_url,
            socket_connect_timeout=0.25,
            socket_timeout=None,
            health_check_interval=5,
        )
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(channel)
            lost = False
            async for message in pubsub.listen():
                announce(message["data"])
        except (OSError, aioredis.RedisError) as error:
            if not lost:  # the refresh keeps positions moving meanwhile
                log.warning("positions channel lost, resubscribing: %s", error)
            lost = True
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()
        await asyncio.sleep(RESUBSCRIBE_SECONDS)
