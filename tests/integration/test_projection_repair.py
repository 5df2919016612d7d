"""The projector finds that Redis lost what it wrote, and repairs the read model by itself."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from rich.console import Console

from projections.generation import current_generation
from projections.live_loop import run_live
from projections.projector import Projector
from projections.read_model import Keys
from projections.rebuild import rebuild
from projections.repair import ReadModelLostError, clear_if_repaired, mark, read_marker
from runtime.demo_store import append_sample
from tests.support.projection_helpers import (
    all_projected,
    applied_position,
    customer_service,
    folded,
    wait_until,
)

QUIET = Console(file=io.StringIO())
# A repair's rebuild keeps the old generation this long after switching (2 s in
# production). Longer than any one poll of the conditions below, which may read the old
# generation just before a switch; shorter than production's, as nothing else reads here.
DROP_GRACE = 0.5


def prefix_keys(client: redis.Redis, keys: Keys) -> list[bytes]:
    found: list[bytes] = []
    meta, partitions = f"{{{keys.prefix}}}:*", f"{{{keys.prefix}:*}}:*"
    for pattern in (meta, partitions):
        found += client.scan_iter(match=pattern, count=1000)
    return found


def snapshot(client: redis.Redis, keys: Keys) -> dict[bytes, bytes]:
    """Every key of the read model, DUMPed: a copy of Redis as it is now."""
    return {name: client.dump(name) for name in prefix_keys(client, keys)}  # type: ignore[misc]


def restore(client: redis.Redis, keys: Keys, copy: dict[bytes, bytes]) -> None:
    """Put the read model back as the copy had it (an older backup restored)."""
    forget(client, keys)
    for name, value in copy.items():
        client.restore(name, 0, value)


def forget(client: redis.Redis, keys: Keys) -> None:
    names = prefix_keys(client, keys)
    if names:
        client.delete(*names)


@contextmanager
def running(projector: Projector) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=run_live, args=(projector, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def test_a_restore_from_an_older_copy_is_found_and_replayed_from_what_it_holds(
    event_store_url: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 10, seed=41, progress_console=QUIET)
        projector = Projector(service.recorder, client, keys, page_size=7)
        with running(projector):
            wait_until(lambda: all_projected(client, keys) == folded(service), "first sample")
            older = snapshot(client, keys)
            older_position = applied_position(client, keys)

            # More history is projected after the copy was taken...
            append_sample(service, 10, seed=43, progress_console=QUIET)
            projector.notify()
            wait_until(lambda: all_projected(client, keys) == folded(service), "second sample")
            generation = current_generation(client, keys)

            # ...then Redis is put back as the copy had it.
            restore(client, keys, older)
            assert applied_position(client, keys) == older_position
            wait_until(lambda: all_projected(client, keys) == folded(service), "repaired", 15)
            wait_until(lambda: read_marker(client, keys) is None, "repair marker cleared", 15)

        # Nothing was written onto the older copy, so it was replayed in place.
        assert f"resuming from position {older_position}" in caplog.text
        assert current_generation(client, keys) == generation
        assert applied_position(client, keys) == service.recorder.max_notification_id()


def test_a_page_written_onto_a_flushed_redis_makes_a_rebuild_in_a_new_generation(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    flushed: list[str] = []

    def flush_once_mid_page(step: str) -> None:
        # Between the check before a page and its record: the page lands on an empty Redis.
        if step == "mid-apply" and not flushed and applied_position(client, keys) > 0:
            forget(client, keys)
            flushed.append(step)

    with customer_service(event_store_url) as service:
        append_sample(service, 30, seed=47, progress_console=QUIET)
        projector = Projector(
            service.recorder,
            client,
            keys,
            page_size=20,
            chunk=2,
            fault=flush_once_mid_page,
            drop_grace=DROP_GRACE,
        )
        with pytest.raises(ReadModelLostError) as lost:
            projector.catch_up()
        assert lost.value.written_since
        assert flushed

        # The live loop takes it from there: marked, rebuilt, switched, unmarked.
        with running(projector):
            wait_until(lambda: all_projected(client, keys) == folded(service), "rebuilt", 30)
            wait_until(lambda: read_marker(client, keys) is None, "repair marker cleared", 15)
        assert current_generation(client, keys) > 1
        assert applied_position(client, keys) == service.recorder.max_notification_id()


def test_an_idle_projector_finds_a_flush_and_refills_redis(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 8, seed=53, progress_console=QUIET)
        projector = Projector(service.recorder, client, keys)
        projector.catch_up()
        assert all_projected(client, keys) == folded(service)
        forget(client, keys)
        with pytest.raises(ReadModelLostError, match="holds no read model"):
            projector.verify()
        # Found before anything was written onto the empty Redis: refilled in place.
        with running(projector):
            wait_until(lambda: all_projected(client, keys) == folded(service), "refilled", 15)
            wait_until(lambda: read_marker(client, keys) is None, "repair marker cleared", 15)
        assert current_generation(client, keys) == 1


def test_a_rebuild_asked_for_by_a_projector_that_died_is_done_by_the_next(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 8, seed=59, progress_console=QUIET)
        Projector(service.recorder, client, keys).catch_up()
        head = service.recorder.max_notification_id() or 0
        # A projector found a page written onto a flushed Redis, marked it, and died.
        mark(client, keys, "a page landed on what was left", head, rebuild=1)
        # The customers of that page are suspect: a replay in place would keep them so.
        assert not clear_if_repaired(client, keys, head)

        projector = Projector(service.recorder, client, keys, drop_grace=DROP_GRACE)
        with running(projector):
            wait_until(lambda: read_marker(client, keys) is None, "repair marker cleared", 30)
        assert current_generation(client, keys) == 2
        assert all_projected(client, keys) == folded(service)


def test_a_copy_older_than_a_rebuild_is_rebuilt_above_the_generation_served(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 8, seed=61, progress_console=QUIET)
        projector = Projector(service.recorder, client, keys, drop_grace=DROP_GRACE)
        projector.catch_up()
        older = snapshot(client, keys)  # generation 1
        rebuild(service.recorder, client, keys, drop_grace=0)
        append_sample(service, 4, seed=67, progress_console=QUIET)
        projector.catch_up()
        assert projector.generation == 2

        # Redis comes back as it was before the rebuild: generation 1 again.
        restore(client, keys, older)
        with pytest.raises(ReadModelLostError, match="older than the 2 written"):
            projector.verify()
        with running(projector):
            wait_until(lambda: current_generation(client, keys) == 3, "rebuilt as 3", 30)
            wait_until(lambda: read_marker(client, keys) is None, "repair marker cleared", 30)
        assert all_projected(client, keys) == folded(service)


def test_a_projector_started_after_redis_went_back_finds_it_by_the_stores_watermark(
    event_store_url: str, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 6, seed=73, progress_console=QUIET)
        first = Projector(service.recorder, client, keys)
        first.catch_up()
        older = snapshot(client, keys)
        append_sample(service, 6, seed=79, progress_console=QUIET)
        first.catch_up()
        first.beat(every=0)  # as the live loop does every second
        head = service.recorder.max_notification_id()

        # While no projector runs, Redis comes back from the older copy.
        restore(client, keys, older)
        second = Projector(service.recorder, client, keys)  # remembers nothing itself
        with pytest.raises(ReadModelLostError, match=f"below the {head} recorded"):
            second.verify()
        assert second.catch_up() == head
        assert "read model lost data" in caplog.text
        assert read_marker(client, keys) is None
        assert all_projected(client, keys) == folded(service)
