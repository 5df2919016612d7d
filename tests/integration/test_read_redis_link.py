"""The read path's Redis connection honours the URL's scheme: rediss:// means TLS."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from read_side.cluster_link import ClusterAwareLink
from read_side.redis_link import KeyedCommand, RedisLink, StoreUnavailableError
from tests.support.valkey_process import ValkeyProcess


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


def test_a_password_for_a_server_that_asks_none_is_dropped_as_the_projector_does(
    tmp_path: Path,
) -> None:
    # redis-py (the projector's client) goes on without it; the read path must agree,
    # or one process would serve while the other answered 503 on the same URL.
    open_server = ValkeyProcess(tmp_path / "open")
    open_server.start()
    try:
        assert ping(f"redis://:unneeded@127.0.0.1:{open_server.port}/0") in (b"PONG", "PONG")
    finally:
        open_server.kill()


def test_a_wrong_password_is_unavailable_not_ignored(tmp_path: Path) -> None:
    guarded = ValkeyProcess(tmp_path / "guarded", password="the-right-one")
    guarded.start()
    try:
        with pytest.raises(StoreUnavailableError, match=r"WRONGPASS|invalid"):
            ping(f"redis://:not-the-one@127.0.0.1:{guarded.port}/0")
        assert ping(guarded.url) in (b"PONG", "PONG")
    finally:
        guarded.kill()


def test_a_packed_command_as_a_links_first_is_answered_once_the_server_kind_is_known(
    redis_url: str,
) -> None:
    key = f"t{uuid.uuid4().hex[:12]}:packed-first"

    async def scenario() -> tuple[Any, bool | None]:
        plain, link = RedisLink(redis_url), ClusterAwareLink(redis_url)
        try:
            await plain.execute("SET", key, "value")
            answer = await link.execute_packed(key, KeyedCommand("GET").packed(key))
            return answer, link.cluster
        finally:
            await plain.execute("DEL", key)
            await plain.close()
            await link.close()

    assert asyncio.run(scenario()) == (b"value", False)
