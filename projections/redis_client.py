"""The read model's Redis as one client: a single server or a Redis Cluster, found out.

`connect` asks the server REDIS_URL names whether it runs in cluster mode and returns
redis-py's cluster client if it does, so the same URL form serves both: any node of a
cluster will do, the client learns the rest from it. Everything else uses the common
command interface of the two clients, with one exception: the projector's data path.
redis-py's cluster pipeline costs five times a raw pipeline, so `send_raw` writes
pre-encoded commands to each master in one write of its own and reads the replies back,
following MOVED and ASK and a master's failover by refreshing the slot map and sending
again what did not land (every data step is guarded, so a repeat changes nothing).
Each master's share ends with a WAIT for one of its replicas, so by the time the
projector records the page's position, a failover cannot take the page's data back.

This is also the one place that touches redis-py's connection internals (pools,
`send_packed_command`, `read_response`), so an upgrade that changes them fails here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, TypeAlias

import hiredis
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

logger = logging.getLogger(__name__)

RedisClient: TypeAlias = redis.Redis | RedisCluster
# One pre-encoded command and the key it touches (its slot decides the node).
RawCommand: TypeAlias = tuple[bytes, bytes]

# How long the data path keeps trying through a failover or a resharding step before it
# gives up with the last error (the cluster's node timeout plus its election is far less).
CLUSTER_RETRY_SECONDS = 30.0
DEFAULT_NODE_TIMEOUT_SECONDS = 15.0  # Redis's and Valkey's cluster-node-timeout default
# Longer than a page's WAIT (REPLICA_WAIT_MS), so that is never cut short.
MIN_REPLY_WAIT_SECONDS = 2.0
# A page's writes wait this long for one replica of each master to have them (WAIT).
REPLICA_WAIT_MS = 1000
FIRST_PAUSE_SECONDS = 0.02  # before a resend; doubled each round up to 0.5 s
_ROUTING_ERRORS = (MovedError, AskError, TryAgainError, ClusterDownError)
_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)
_ASKING = b"*1\r\n$6\r\nASKING\r\n"


class ClusterUnavailableError(redis.ConnectionError):
    """The cluster did not take the commands within CLUSTER_RETRY_SECONDS."""


def cluster_node_timeout(url: str) -> float | None:
    """The cluster's node timeout in seconds if the server at `url` runs in cluster mode
    (INFO's cluster_enabled), else None. A server that refuses CONFIG GET (a managed one)
    is taken to use the default, 15 s; one that refuses INFO, to be a single server."""
    probe = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
    try:
        try:
            info = probe.info("cluster")
        except ResponseError:
            return None
        if not info.get("cluster_enabled"):
            return None
        try:
            value = probe.config_get("cluster-node-timeout").get("cluster-node-timeout")
            return int(value) / 1000 if value is not None else DEFAULT_NODE_TIMEOUT_SECONDS
        except (ResponseError, ValueError):
            return DEFAULT_NODE_TIMEOUT_SECONDS
    finally:
        probe.close()


def connect(url: str, *, socket_timeout: float = 30) -> RedisClient:
    """A client for the read model's Redis at `url`: a cluster client if it is a cluster.

    On a cluster a reply waits at most the node timeout + 1 s: a master silent that long
    has been failed over, and the projector goes on with its successor. (Replies stream
    back one by one, so the wait is between two replies, never a whole page's.)
    """
    node_timeout = cluster_node_timeout(url)
    if node_timeout is not None:
        wait = min(socket_timeout, max(node_timeout + 1.0, MIN_REPLY_WAIT_SECONDS))
        return RedisCluster.from_url(url, socket_timeout=wait, socket_connect_timeout=5)
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
    sent = _Sent(client, [packed for _, packed in commands])
    return sent.replies().errors


class _Replies:
    """What one node answered: error replies, commands to route again, ASK redirections,
    and how many replicas confirmed the writes (None: not asked)."""

    __slots__ = ("again", "asked", "confirmed", "errors")

    def __init__(self) -> None:
        self.errors: list[ResponseError] = []
        self.again: list[int] = []
        self.asked: list[tuple[int, str, int]] = []
        self.confirmed: int | None = None


class _Sent:
    """Commands written in one go on a connection of one node, their replies still unread.

    With `wait_replicas`, a WAIT follows them: its reply says how many replicas have
    every one of them, so a failover to one of those replicas cannot lose them.
    """

    def __init__(self, node: redis.Redis, packed: list[bytes], wait_replicas: int = 0) -> None:
        self._pool = node.connection_pool
        self._connection = self._pool.get_connection()
        self._count = len(packed)
        self._wait = wait_replicas > 0
        if self._wait:
            packed = [*packed, _wait_command(wait_replicas)]
        try:
            self._connection.send_packed_command([b"".join(packed)])  # type: ignore[no-untyped-call]
        except BaseException:
            self._drop()
            raise

    def replies(self) -> _Replies:
        replies = _Replies()
        try:
            for index in range(self._count):
                try:
                    self._connection.read_response()
                except AskError as ask:
                    replies.asked.append((index, ask.host, ask.port))
                except _ROUTING_ERRORS:
                    replies.again.append(index)
                except ResponseError as error:
                    replies.errors.append(error)
            if self._wait:
                try:
                    replies.confirmed = int(self._connection.read_response())
                except ResponseError:
                    # Not a master any more (it woke up as its successor's replica): the
                    # whole share goes again, to the master the refreshed map names.
                    replies.again = list(range(self._count))
        except BaseException:
            self._drop()
            raise
        self._pool.release(self._connection)
        return replies

    def _drop(self) -> None:
        self._connection.disconnect()  # type: ignore[no-untyped-call]  # replies may be unread
        self._pool.release(self._connection)


def _wait_command(replicas: int) -> bytes:
    command: Any = ("WAIT", replicas, REPLICA_WAIT_MS)
    packed: bytes = hiredis.pack_command(command)
    return packed


def _send_to_cluster(client: RedisCluster, commands: Sequence[RawCommand]) -> list[ResponseError]:
    slots = [slot_of(key) for key, _ in commands]
    pending = list(range(len(commands)))
    errors: list[ResponseError] = []
    deadline = time.monotonic() + CLUSTER_RETRY_SECONDS
    pause = FIRST_PAUSE_SECONDS
    while True:
        again: list[int] = []
        last_error: Exception | None = None
        try:
            groups = _by_master(client, [(index, slots[index]) for index in pending])
        except (RedisClusterException, *_CONNECTION_ERRORS) as error:
            groups, again, last_error = {}, pending, error
        # Every master gets its share before any reply is read, so they work side by side.
        sent: list[tuple[ClusterNode, list[int], _Sent]] = []
        for node, indexes, replicas in groups.values():
            try:
                packed = [commands[i][1] for i in indexes]
                sent.append(
                    (node, indexes, _Sent(client.get_redis_connection(node), packed, replicas))
                )
            except _CONNECTION_ERRORS as error:
                again += indexes  # this master may be failing over: all of its share again
                last_error = error
        for node, indexes, writing in sent:
            try:
                replies = writing.replies()
                for index, host, port in replies.asked:
                    # The key's slot is migrating: this one command goes to the importing
                    # node, announced by ASKING (the slot map stays as it is meanwhile).
                    target = client.get_redis_connection(_node_at(client, host, port))
                    asked = _Sent(target, [_ASKING, commands[indexes[index]][1]]).replies()
                    replies.errors += asked.errors
                    if asked.again or asked.asked:
                        replies.again.append(index)
            except _CONNECTION_ERRORS as error:
                again += indexes
                last_error = error
                continue
            if replies.confirmed is not None and replies.confirmed < 1:
                # No replica has the share: the master may have been failed over meanwhile
                # (a hung one that woke up still answers, then drops what it took), or its
                # replica is lagging or gone. Send it again to whoever owns the slots once
                # the map is read again; a replica that failed leaves the map, and then
                # no WAIT is asked of its master.
                again += indexes
                last_error = ClusterUnavailableError(f"no replica of {node.name} confirmed")
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
        if pause == FIRST_PAUSE_SECONDS:  # once per call: the slot map is read again
            logger.warning(
                "Redis Cluster: sending %d command(s) again after: %s",
                len(again), last_error or "a MOVED, ASK or TRYAGAIN reply",
            )  # fmt: skip
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
        _refresh_slots(client)
        pending = again


def _by_master(
    client: RedisCluster, slotted: list[tuple[int, int]]
) -> dict[str, tuple[ClusterNode, list[int], int]]:
    """Commands by the master owning their slot: (master, command indexes, its replicas)."""
    groups: dict[str, tuple[ClusterNode, list[int], int]] = {}
    manager = client.nodes_manager
    for index, slot in slotted:
        node = manager.get_node_from_slot(slot)
        group = groups.get(node.name)
        if group is None:
            replicas = len(manager.slots_cache.get(slot, ())) - 1
            groups[node.name] = (node, [index], max(replicas, 0))
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
