"""The read model on a real 3-master + 3-replica Valkey Cluster, reached through one node.

REDIS_URL names one master; the service finds out it is a cluster and learns the rest.
Projection, rebuild, audit and the read path's link must give exactly what they give on
one server: the pure fold of the event store.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import hiredis
import pytest
from rich.console import Console

from projections.audit import audit
from projections.customer_record import fields_of, read_fields
from projections.projector import Projector
from projections.read_model import Keys
from projections.rebuild import rebuild
from projections.redis_client import connect, send_raw
from read_side.cluster_link import ClusterAwareLink
from read_side.redis_link import KeyedCommand
from runtime.demo_store import append_sample
from tests.support.projection_helpers import all_projected, customer_service, folded
from tests.support.valkey_cluster import ValkeyCluster

pytestmark = pytest.mark.redis

CUSTOMERS = str(Path(sys.executable).with_name("customers"))


def own_prefix() -> str:
    """A key prefix no other test uses: the tests that fault no node share one cluster."""
    return f"t{uuid.uuid4().hex[:12]}"


def test_a_cluster_node_in_redis_url_gives_a_cluster_client_that_reaches_every_master(
    shared_valkey_cluster: ValkeyCluster,
) -> None:
    valkey_cluster = shared_valkey_cluster
    client = connect(valkey_cluster.url)
    prefix = own_prefix()
    keys = [f"{prefix}:probe:{n}".encode() for n in range(300)]
    commands = [(key, hiredis.pack_command(("SET", key, "1"))) for key in keys]

    assert send_raw(client, commands) == []

    # (Each key's owner looked up once, each read on one connection per master.)
    owner = {key: valkey_cluster.master_for_key(key) for key in keys}
    masters = {node.name: node for node in owner.values()}
    assert len(masters) == 3
    for name, node in masters.items():
        with node.client() as direct:
            for key in (key for key in keys if owner[key].name == name):
                assert direct.get(key) == b"1"


def test_projection_rebuild_and_audit_on_a_cluster_match_the_event_store(
    shared_valkey_cluster: ValkeyCluster, sqlite_url: str
) -> None:
    valkey_cluster = shared_valkey_cluster
    client = connect(valkey_cluster.url)
    keys = Keys(f"cluster-{own_prefix()}")
    with customer_service(sqlite_url) as service:
        append_sample(service, 120, seed=5, progress_console=Console(file=io.StringIO()))
        expected = folded(service)

        # Projected through one node's address, the customers land on all three masters.
        Projector(service.recorder, client, keys).catch_up()
        assert all_projected(client, keys) == expected  # type: ignore[arg-type]
        for master in valkey_cluster.masters():
            held = master.client().scan_iter(match=keys.bucket_pattern(1), count=1000)
            assert any(held), f"{master.name} holds no customer"
        assert audit(service.recorder, client, keys).clean

        # A rebuild fills generation 2 on every master, switches, and drops generation 1.
        result = rebuild(service.recorder, client, keys, drop_grace=0)
        assert result.new_generation == 2
        assert all_projected(client, keys) == expected  # type: ignore[arg-type]
        report = audit(service.recorder, client, keys)
        assert report.clean
        assert report.generation == 2


def test_the_read_link_routes_each_customer_to_its_master_and_reads_what_was_projected(
    shared_valkey_cluster: ValkeyCluster, sqlite_url: str
) -> None:
    valkey_cluster = shared_valkey_cluster
    client = connect(valkey_cluster.url)
    keys = Keys(f"cluster-read-{own_prefix()}")
    with customer_service(sqlite_url) as service:
        append_sample(service, 60, seed=9, progress_console=Console(file=io.StringIO()))
        expected = folded(service)
        Projector(service.recorder, client, keys).catch_up()

    async def read_all() -> tuple[dict[int, object], dict[int, object]]:
        link = ClusterAwareLink(valkey_cluster.url)
        try:
            # Both ways a command can go: packed by the link, and packed by its caller
            # (the read path's HMGET, whose field names are packed once).
            buckets = {customer_id: keys.bucket(1, customer_id) for customer_id in expected}
            replies = await asyncio.gather(
                *(
                    link.execute("HMGET", bucket, *fields_of(customer_id))
                    for customer_id, bucket in buckets.items()
                )
            )
            packed_replies = await asyncio.gather(
                *(
                    link.execute_packed(
                        bucket, KeyedCommand("HMGET", *fields_of(customer_id)).packed(bucket)
                    )
                    for customer_id, bucket in buckets.items()
                )
            )
            assert link.cluster is True
            return (
                {
                    customer_id: read_fields(customer_id, fields)
                    for customer_id, fields in zip(expected, replies, strict=True)
                },
                {
                    customer_id: read_fields(customer_id, fields)
                    for customer_id, fields in zip(expected, packed_replies, strict=True)
                },
            )
        finally:
            await link.close()

    assert asyncio.run(read_all()) == (expected, expected)


def test_the_read_link_follows_a_slot_moved_to_another_master(
    valkey_cluster: ValkeyCluster,
) -> None:
    # One key for each way a command can go: packed by the link, or by its caller.
    plain, packed = "moving:{one-slot}", "moving:{other-slot}"
    assert ValkeyCluster.slot_of(plain) != ValkeyCluster.slot_of(packed)
    moves = {}
    for key in (plain, packed):
        source = valkey_cluster.master_for_key(key)
        target = next(m for m in valkey_cluster.masters() if m.name != source.name)
        source.client().set(key, f"before {key}")
        moves[key] = (source, target)

    async def scenario() -> list[bytes]:
        link = ClusterAwareLink(valkey_cluster.url)
        get = KeyedCommand("GET")
        try:
            answers = [
                await link.execute("GET", plain),
                await link.execute_packed(packed, get.packed(packed)),
            ]
            # The operator moves the slots (and their keys) to other masters.
            for key, (source, target) in moves.items():
                _move_slot(valkey_cluster, ValkeyCluster.slot_of(key), key, source, target)
            # MOVED, then each new owner answers
            answers += [
                await link.execute("GET", plain),
                await link.execute_packed(packed, get.packed(packed)),
            ]
            return answers
        finally:
            await link.close()

    before = [b"before " + key.encode() for key in (plain, packed)]
    assert asyncio.run(scenario()) == before + before
    for key, (_, target) in moves.items():
        assert valkey_cluster.master_for_key(key).name == target.name


def _move_slot(cluster: ValkeyCluster, slot: int, key: str, source: object, target: object) -> None:
    from tests.support.valkey_cluster import ValkeyNode

    assert isinstance(source, ValkeyNode)
    assert isinstance(target, ValkeyNode)
    source_id = source.client().execute_command("CLUSTER", "MYID").decode()
    target_id = target.client().execute_command("CLUSTER", "MYID").decode()
    target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    source.client().execute_command("MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
    for node in cluster.masters():
        node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


def test_commands_on_a_cluster_with_a_master_down_and_no_replica_fail_in_one_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    with ValkeyCluster(tmp_path / "cluster", replicas_per_master=0) as cluster:
        env = {
            **os.environ,
            "REDIS_URL": cluster.url,
            "REDIS_PREFIX": "down",
            "EVENT_STORE_URL": sqlite_url,
            "DATA_DIR": str(tmp_path / "data"),
        }
        with customer_service(sqlite_url) as service:
            append_sample(service, 30, seed=3, progress_console=Console(file=io.StringIO()))
            Projector(service.recorder, connect(cluster.url), Keys("down")).catch_up()
        # A master that is not the one REDIS_URL names dies; nobody can take its slots.
        cluster.kill(cluster.masters()[1])
        # Once the others agree it failed, the cluster is down. (Before, a command whose
        # keys live on a master that answers could still succeed: dead-letters did when
        # the machine was quiet enough to start it within the node timeout.)
        cluster.wait_until_down()

        # The commands at once: each waits out the cluster client's retries (~3 s).
        started = {
            command: subprocess.Popen(
                [CUSTOMERS, command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for command in ("audit", "dead-letters", "rebuild")
        }
        for command, process in started.items():
            _, stderr = process.communicate(timeout=120)
            assert process.returncode != 0, command
            assert "Traceback" not in stderr
            last = stderr.strip().splitlines()[-1]
            assert last.startswith("error:"), stderr
            assert "Redis" in last, stderr
