"""Rebuilds: a fresh generation fills while the current one serves, then they switch."""

from __future__ import annotations

import io
import threading
from decimal import Decimal
from typing import Any

import pytest
import redis
from rich.console import Console

from projections.generation import current_generation
from projections.live_loop import run_live
from projections.projector import Projector
from projections.read_model import Keys
from projections.rebuild import RebuildError, rebuild
from runtime.demo_store import append_sample
from tests.support.projection_helpers import (
    all_projected,
    customer_service,
    folded,
    projected,
    wait_until,
)


def test_rebuild_while_a_reader_loops_never_misses_a_customer_or_shows_a_partial_total(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 80, seed=17, progress_console=Console(file=io.StringIO()))
        expected = folded(service)
        Projector(service.recorder, client, keys).catch_up()

        # A reader loops over every customer, reading as the read side does.
        stop, reading = threading.Event(), threading.Event()
        reading.set()
        reads: list[int] = []
        wrong: list[tuple[int, Any]] = []

        def reader() -> None:
            own = redis.Redis.from_url(redis_url)
            while reading.is_set():
                for customer_id, document in expected.items():
                    seen = projected(own, keys, customer_id)
                    reads.append(customer_id)
                    if seen != document:
                        wrong.append((customer_id, seen))

        # A live projector runs throughout, as in production.
        live = Projector(service.recorder, redis.Redis.from_url(redis_url), keys)
        reader_thread = threading.Thread(target=reader)
        live_thread = threading.Thread(target=run_live, args=(live, stop))
        reader_thread.start()
        live_thread.start()
        try:
            progress: list[tuple[int, int, int]] = []
            result = rebuild(
                service.recorder,
                client,
                keys,
                page_size=50,  # many pages, so the reader overlaps the rebuild
                drop_grace=0.2,
                progress=lambda *report: progress.append(report),
            )
            reading.clear()
            reader_thread.join(timeout=10)
            # After the switch the live projector follows the new generation.
            order = service.place_order(1, Decimal("5.00"))
            live.notify()
            wait_until(lambda: live.position >= order.position, "the live projector moved on")
        finally:
            reading.clear()
            stop.set()
            reader_thread.join(timeout=10)
            live_thread.join(timeout=10)

        assert wrong == []
        assert len(reads) > len(expected)
        assert (result.old_generation, result.new_generation) == (1, 2)
        assert current_generation(client, keys) == 2
        assert progress[-1][0] == result.position
        assert all_projected(client, keys) == folded(service)
        left = [
            key
            for pattern in keys.generation_patterns(1)
            for key in client.scan_iter(match=pattern)
            if keys.is_generation_key(key, 1)
        ]
        assert left == []
        assert not client.exists(keys.api_keys(1), keys.tracking(1))
        assert client.hget(keys.tracking(2), "customers") is not None
        assert projected(client, keys, 1) == folded(service)[1]


def test_a_second_rebuild_at_the_same_time_is_refused(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    client.set(f"{{{redis_prefix}}}:rebuild-lock", "another", ex=60)
    with customer_service(sqlite_url) as service, pytest.raises(RebuildError, match="another"):
        rebuild(service.recorder, client, keys)
