"""The read path's Redis connection honours the URL's scheme: rediss:// means TLS."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from read_side.redis_link import RedisLink, StoreUnavailableError


def ping(url: str) -> Any:
    async def scenario() -> Any:
        link = RedisLink(url)
        try:
            return await link.execute("PING")
        finally:
            await link.close()

    return asyncio.run(scenario())


def test_a_plain_redis_url_is_spoken_to_in_plain_text(redis_url: str) -> None:
    assert ping(redis_url) in (b"PONG", "PONG")


def test_a_rediss_url_is_never_spoken_to_in_plain_text(redis_url: str) -> None:
    # The test server speaks no TLS: a TLS handshake with it must fail, and the read
    # path must not fall back to sending commands (and keys) in the clear.
    with pytest.raises(StoreUnavailableError):
        ping(redis_url.replace("redis://", "rediss://", 1))
