"""The read model's Redis as one client: a single server or a Redis Cluster, found out.

`connect` asks the server REDIS_URL names whether it runs in cluster mode and returns
redis-py's cluster client if it does, so the same URL form serves both: any node of a
cluster will do, the client learns the rest from it. Everything else uses the common
command interface of the two clients, with one exception: the projector's data path.
redis-py's cluster pipeline costs five times a raw pipeline, so `send_raw` writes
pre-encoded commands to each master in one write of its own and reads the replies back,
following MOVED and ASK and a master's failover by refreshing the slot map and sending
again what did not land (every data step is guarded, so a repeat changes nothing).

This is also the one place that touches redis-py's connection internals (pools,
`send_packed_command`, `read_response`), so an upgrade that changes them fails here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeAlias

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

RedisClient: TypeAlias = redis.Redis | RedisCluster
# One pre-encoded command and the key it touches (its slot decides the node).
RawCommand: TypeAlias = tuple[bytes, bytes]

# How long the data path keeps trying through a failover or a resharding step before it
# gives up with the last error (the cluster's node timeout plus its election is far less).
CLUSTER_RETRY_SECONDS = 30.0
_ROUTING_ERRORS = (MovedError, AskError, TryAgainError, ClusterDownError)
_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)
_ASKING = b"*1\r\n$6\r\nASKING\r\n"


class ClusterUnavailableError(redis.ConnectionError):
    """The cluster did not take the commands within CLUSTER_RETRY_SECONDS."""


def is_cluster_node(url: str) -> bool:
    """Whether the server at `url` runs in cluster mode (INFO's cluster_enabled)."""
    probe = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
    try:
        info = probe.info("cluster")
    except ResponseError:
        return False  # INFO refused (a restricted user): taken as a single server
    finally:
        probe.close()
    return bool(info.get("cluster_enabled"))


def connect(url: str, *, socket_timeout: float = 30) -> RedisClient:
    """A client for the read model's Redis at `url`: a cluster client if it is a cluster."""
    if is_cluster_node(url):
        return RedisCluster.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=5)
    return redis.Redis.from_url(url, socket_timeout=socket_timeout)


def slot_of(key: str | bytes) -> int:
    return key_slot(key.encode() if isinstance(key, str) else key)


def send_raw(client: RedisClient, commands: Sequence[RawCommand]) -> list[ResponseError]:
    """Send the commands, each to the master owning its key, and read every reply.

    Returns the error replies (a refused step); routing errors and a failing master are
    handled here. Raises ClusterUnavailableError if the cluster does not recover in time.
    """
    if isinstance(client, RedisCluster):
        return _send_to_cluster(client, commands)
    replies = _send_on(client, [packed for _, packed in commands])
    return replies.errors


def _send_on(node: redis.Redis, packed: list[bytes]) -> _Replies:
    """Send `packed` in one write on a connection of `node` and read every reply."""
    pool = node.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([b"".join(packed)])  # type: ignore[no-untyped-call]
        replies = _Replies()
        for index in range(len(packed)):
            try:
                connection.read_response()
            except AskError as ask:
                replies.asked.append((index, ask.host, ask.port))
            except _ROUTING_ERRORS:
                replies.again.append(index)
            except ResponseError as error:
                replies.errors.append(error)
        return replies
    except BaseException:
        connection.disconnect()  # type: ignore[no-untyped-call]  # replies may be unread
        raise
    finally:
        pool.release(connection)


class _Replies:
    """What one node answered: error replies, commands to route again, ASK redirections."""

    __slots__ = ("again", "asked", "errors")

    def __init__(self) -> None:
        self.errors: list[ResponseError] = []
        self.again: list[int] = []
        self.asked: list[tuple[int, str, int]] = []


def _send_to_cluster(client: RedisCluster, commands: Sequence[RawCommand]) -> list[ResponseError]:
    slots = [slot_of(key) for key, _ in commands]
    pending = list(range(len(commands)))
    errors: list[ResponseError] = []
    deadline = time.monotonic() + CLUSTER_RETRY_SECONDS
    pause = 0.02
    while True:
        again: list[int] = []
        last_error: Exception | None = None
        try:
            groups = _by_master(client, [(index, slots[index]) for index in pending])
        except (RedisClusterException, *_CONNECTION_ERRORS) as error:
            groups, again, last_error = {}, pending, error
        for node, indexes in groups.values():
            try:
                replies = _send_on(
                    client.get_redis_connection(node), [commands[i][1] for i in indexes]
                )
                for index, host, port in replies.asked:
                    # The key's slot is migrating: this one command goes to the importing
                    # node, announced by ASKING (the slot map stays as it is meanwhile).
                    target = client.get_redis_connection(_node_at(client, host, port))
                    asked = _send_on(target, [_ASKING, commands[indexes[index]][1]])
                    replies.errors += asked.errors
                    if asked.again or asked.asked:
                        replies.again.append(index)
            except _CONNECTION_ERRORS as error:
                again += indexes  # this master may be failing over: all of its share again
                last_error = error
                continue
            errors += replies.errors
            again += (indexes[i] for i in replies.again)
        if not again:
            return errors
        if time.monotonic() > deadline:
            raise ClusterUnavailableError(
                f"Redis Cluster did not take {len(again)} command(s) in "
                f"{CLUSTER_RETRY_SECONDS:.0f} s: {last_error or 'slots kept moving'}"
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
        _refresh_slots(client)
        pending = again


def _by_master(
    client: RedisCluster, slotted: list[tuple[int, int]]
) -> dict[str, tuple[ClusterNode, list[int]]]:
    groups: dict[str, tuple[ClusterNode, list[int]]] = {}
    manager = client.nodes_manager
    for index, slot in slotted:
        node = manager.get_node_from_slot(slot)
        group = groups.get(node.name)
        if group is None:
            groups[node.name] = (node, [index])
        else:
            group[1].append(index)
    return groups


def _node_at(client: RedisCluster, host: str, port: int) -> ClusterNode:
    for attempt in range(2):
        node: ClusterNode | None = client.get_node(host=host, port=port)  # type: ignore[no-untyped-call]
        if node is not None:
            return node
        if attempt == 0:
            _refresh_slots(client)
    raise redis.ConnectionError(f"no cluster node at {host}:{port}")


def _refresh_slots(client: RedisCluster) -> None:
    """Learn the slot map again (after MOVED, or a master that stopped answering)."""
    try:
        client.nodes_manager.initialize()
    except (RedisClusterException, *_CONNECTION_ERRORS):
        pass  # no node answered yet (an election in progress): the next round asks again
