"""Layout 2: buckets that stay compact, and a partition that lost data found and replayed.

A partition's buckets and checkpoint share one hash tag, so a node that loses the tail of
its writes takes both back together. Here that loss is made by hand, on a real Redis: the
partition's keys are copied, more history is projected, and the copy is put back.
"""

from __future__ import annotations

import asyncio
import io
import logging
from decimal import Decimal

import pytest
import redis
from rich.console import Console

from projections.customer_record import CHUNK, fields_of, offset_of
from projections.projector import Projector
from projections.read_model import Keys, partition_of
from projections.redis_client import slot_of
from read_side.customer_reader import CustomerReader
from read_side.projection_state import ProjectionState
from read_side.redis_link import RedisLink
from runtime.demo_store import append_sample
from tests.support.projection_helpers import all_projected, customer_service, folded
from tests.support.read_model_records import put_api_key

pytestmark = pytest.mark.redis

QUIET = Console(file=io.StringIO())
STAFF = "Token staff-key"


def partition_keys(client: redis.Redis, keys: Keys, partition: int) -> list[bytes]:
    return list(client.scan_iter(match=f"{{{keys.prefix}:{partition}}}:*", count=1000))


def copy_partition(client: redis.Redis, keys: Keys, partition: int) -> dict[bytes, bytes]:
    return {name: client.dump(name) for name in partition_keys(client, keys, partition)}  # type: ignore[misc]


def put_back(client: redis.Redis, keys: Keys, partition: int, copy: dict[bytes, bytes]) -> None:
    """The partition as the copy had it: its node lost what was written since."""
    client.delete(*partition_keys(client, keys, partition))
    for name, value in copy.items():
        client.restore(name, 0, value)


async def answers(redis_url: str, keys: Keys, *customer_ids: int) -> list[int]:
    """The statuses a freshly started read side gives for these customers."""
    link = RedisLink(redis_url)
    state = ProjectionState(link, keys, redis_url=redis_url, refresh_interval=3600)
    try:
        await state.refresh()
        reader = CustomerReader(link, state, keys)
        return [(await reader.reply(str(cid), STAFF)).status for cid in customer_ids]
    finally:
        await link.close()


def test_a_bucket_of_sample_customers_is_a_listpack_with_fields_of_at_most_64_bytes(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(sqlite_url) as service:
        append_sample(service, 40, seed=3, progress_console=QUIET)
        Projector(service.recorder, client, keys).catch_up()
        assert all_projected(client, keys) == folded(service)
    for customer_id in (1, 16, 40):
        bucket = keys.bucket(1, customer_id)
        assert client.object("encoding", bucket) == b"listpack"
        assert max(len(value) for value in client.hvals(bucket)) <= CHUNK
        # A customer's record and its partition's checkpoint live in one slot.
        checkpoint = keys.checkpoint(1, partition_of(customer_id))
        assert slot_of(bucket) == slot_of(checkpoint)


def test_a_record_that_shrinks_leaves_no_chunk_behind(
    sqlite_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    bucket, chunks = keys.bucket(1, 5), [name.decode() for name in fields_of(5)[:4]]
    with customer_service(sqlite_url) as service:
        projector = Projector(service.recorder, client, keys)

        def fields_held() -> list[str]:
            projector.catch_up()
            assert all_projected(client, keys) == folded(service)
            held = {name.decode() for name in client.hkeys(bucket)}
            return [name for name in chunks if name in held]

        service.register_customer(5, {"first_name": "Ada", "notes": "n" * 150})
        assert fields_held() == chunks[:3]  # about 190 bytes: three chunks
        service.update_profile(5, {"notes": "n" * 400})
        assert fields_held() == chunks[:1]  # past four chunks: kept whole in the first
        assert client.object("encoding", bucket) == b"hashtable"
        service.update_profile(5, {"notes": None})
        assert fields_held() == chunks[:1]  # short again: one chunk, the others gone
        assert client.hstrlen(bucket, offset_of(5) + "a") <= CHUNK


@pytest.mark.parametrize("found_by", ["the idle check", "the next page's fence"])
def test_a_partition_that_went_back_is_answered_503_and_replayed_from_its_checkpoint(
    found_by: str,
    event_store_url: str,
    redis_url: str,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    put_api_key(client, keys, "staff-key", "staff")
    lost, intact = 3, 20  # customer 3 is in partition 0, customer 20 in partition 1
    assert partition_of(lost) != partition_of(intact)
    with customer_service(event_store_url) as service:
        append_sample(service, 40, seed=11, progress_console=QUIET)
        projector = Projector(service.recorder, client, keys, page_size=25)
        projector.catch_up()

        # A copy of partition 0 is taken; then both partitions move on.
        copy = copy_partition(client, keys, partition_of(lost))
        for customer_id in (lost, intact):
            service.place_order(customer_id, Decimal("12.34"))
        projector.catch_up()
        before_loss = folded(service)
        assert all_projected(client, keys) == before_loss

        # Partition 0's node loses what it took since the copy.
        put_back(client, keys, partition_of(lost), copy)
        assert all_projected(client, keys)[lost] != before_loss[lost]

        # Readers serve the other partitions and answer 503 for this one, never the old data.
        assert asyncio.run(answers(redis_url, keys, lost, intact)) == [503, 200]

        # The projector finds it and replays exactly what the partition lost.
        with caplog.at_level(logging.WARNING, logger="projections.projector"):
            if found_by == "the idle check":
                projector.verify()
            else:
                service.place_order(lost, Decimal("1.00"))
                projector.catch_up()
        assert "partition(s) of the read model went back" in caplog.text
        assert all_projected(client, keys) == folded(service)
        assert asyncio.run(answers(redis_url, keys, lost, intact)) == [200, 200]
