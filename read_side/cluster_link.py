"""The read path's Redis link for one server or a Redis Cluster, told apart on connecting.

On its first command the link asks the server REDIS_URL names (INFO cluster). A single
server is then spoken to through one RedisLink exactly as before: `execute` becomes that
link's own method, so the single-server read path pays nothing for this. On a cluster,
each command goes to the master owning its key's slot, over one pipelined RedisLink per
master, by a slot map read with CLUSTER SLOTS. A MOVED reply (a slot moved, a replica
promoted) reloads the map and sends the command again; ASK sends it once to the importing
node; a master that stops answering makes the link reload the map, at most every
MAP_RELOAD_SECONDS, until the cluster names its successor. Meanwhile its reads fail with
StoreUnavailableError (503, retried by the client), never wait for the election.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse, urlunparse

from redis.crc import key_slot

from read_side.redis_link import RedisLink, RedisReplyError, StoreUnavailableError

SLOTS = 16384
MAP_RELOAD_SECONDS = 0.1
_REDIRECTS = 3
Address = tuple[str, int]


class ClusterAwareLink:
    """RedisLink's interface (execute, execute_packed, connections, on_connect, close) over
    either kind."""

    def __init__(
        self, url: str, *, connect_timeout: float = 0.25, reply_timeout: float = 0.5
    ) -> None:
        self._url = urlparse(url)
        self._timeouts = {"connect_timeout": connect_timeout, "reply_timeout": reply_timeout}
        self._seed_address: Address = (self._url.hostname or "127.0.0.1", self._url.port or 6379)
        self._seed = self._node_link(url)
        self._links: dict[Address, RedisLink] = {}
        self._by_slot: list[RedisLink | None] = [None] * SLOTS
        self._reloading: asyncio.Task[None] | None = None
        self._reloaded_at = float("-inf")
        self._deciding: asyncio.Task[None] | None = None
        self.cluster: bool | None = None  # None until the first connection tells
        # Connections made over every node's link: a new one may reach a server that
        # restarted, so what was learnt before is re-checked (see RedisLink).
        self.connections = 0
        self.on_connect: Callable[[], None] | None = None
        self.execute: Callable[..., Awaitable[Any]] = self._first_execute
        self.execute_packed: Callable[[str, bytes], Awaitable[Any]] = self._first_execute_packed

    async def close(self) -> None:
        for task in (self._reloading, self._deciding):
            if task is not None:
                task.cancel()
        await self._seed.close()
        for link in self._links.values():
            await link.close()

    # Deciding which kind of server this is

    async def _first_execute(self, *args: str | bytes | int) -> Any:
        await self._decided()
        return await self.execute(*args)

    async def _first_execute_packed(self, key: str, packed: bytes) -> Any:
        await self._decided()
        return await self.execute_packed(key, packed)

    async def _decided(self) -> None:
        if self.cluster is None:
            if self._deciding is None or self._deciding.done():
                self._deciding = asyncio.get_running_loop().create_task(self._decide())
            await asyncio.shield(self._deciding)

    async def _decide(self) -> None:
        try:
            info = await self._seed.execute("INFO", "cluster")
        except RedisReplyError:
            info = b""  # INFO refused to this user: taken as a single server
        if b"cluster_enabled:1" in info:
            await self._reload_map()
            self.cluster = True
            self.execute = self._route
            self.execute_packed = self._route_packed
        else:
            self.cluster = False
            self.execute = self._seed.execute
            self.execute_packed = self._seed.execute_packed

    # A cluster

    def _route(self, *args: str | bytes | int) -> Awaitable[Any]:
        key = args[3] if args[0] in _SCRIPT_COMMANDS else args[1]  # a script: its first key
        slot = key_slot(key if isinstance(key, bytes) else str(key).encode())
        return self._execute_routed(slot, lambda link: link.execute(*args))

    def _route_packed(self, key: str, packed: bytes) -> Awaitable[Any]:
        return self._execute_routed(
            key_slot(key.encode()), lambda link: link.execute_packed(key, packed)
        )

    async def _execute_routed(self, slot: int, send: Callable[[RedisLink], Awaitable[Any]]) -> Any:
        for _ in range(_REDIRECTS):
            link = self._by_slot[slot]
            if link is None:
                self._reload_soon()
                raise StoreUnavailableError(f"no master known for slot {slot}")
            try:
                return await send(link)
            except StoreUnavailableError:
                self._reload_soon()  # the master may be failing over
                raise
            except RedisReplyError as error:
                reply = str(error)
                if reply.startswith("MOVED "):
                    self._learn(slot, reply)
                    continue
                if reply.startswith("ASK "):
                    target = self._link_at(_address(reply))
                    asking = target.execute("ASKING")
                    answer = send(target)
                    await asking
                    return await answer
                if reply.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                    self._reload_soon()
                    raise StoreUnavailableError(reply) from None
                raise
        raise StoreUnavailableError(f"slot {slot} kept moving")

    def _learn(self, slot: int, moved: str) -> None:
        """MOVED names the slot's new master: use it now, and reload the whole map."""
        self._by_slot[slot] = self._link_at(_address(moved))
        self._reload_soon()

    def _reload_soon(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            return
        if time.monotonic() - self._reloaded_at < MAP_RELOAD_SECONDS:
            return
        self._reloading = asyncio.get_running_loop().create_task(self._reload_quietly())

    async def _reload_quietly(self) -> None:
        with contextlib.suppress(StoreUnavailableError):
            await self._reload_map()

    async def _reload_map(self) -> None:
        """Read CLUSTER SLOTS from the first node that answers; map every slot to a link."""
        self._reloaded_at = time.monotonic()
        last: Exception | None = None
        # The node REDIS_URL names first, then every node met since (it may be the one down).
        for address, link in [(self._seed_address, self._seed), *self._links.items()]:
            try:
                ranges = await link.execute("CLUSTER", "SLOTS")
            except (StoreUnavailableError, RedisReplyError) as error:
                last = error
                continue
            by_slot: list[RedisLink | None] = [None] * SLOTS
            for start, end, master, *_ in ranges:
                host = master[0].decode() or address[0]
                target = self._link_at((host, int(master[1])))
                for slot in range(int(start), int(end) + 1):
                    by_slot[slot] = target
            self._by_slot = by_slot
            # Connect to every master now: a first connection makes the state be read
            # again (see RedisLink.connections), better before reads than during them.
            masters = {id(link): link for link in by_slot if link is not None}.values()
            await asyncio.gather(
                *(master.execute("PING") for master in masters), return_exceptions=True
            )
            return
        raise StoreUnavailableError(f"no cluster node answered CLUSTER SLOTS: {last}")

    def _link_at(self, address: Address) -> RedisLink:
        link = self._links.get(address)
        if link is None:
            host, port = address
            netloc = self._url.netloc.rsplit("@", 1)
            where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
            netloc[-1] = where
            link = self._links[address] = self._node_link(
                urlunparse(self._url._replace(netloc="@".join(netloc)))
            )
        return link

    def _node_link(self, url: str) -> RedisLink:
        link = RedisLink(url, **self._timeouts)
        link.on_connect = self._connected
        return link

    def _connected(self) -> None:
        self.connections += 1
        if self.on_connect is not None:
            self.on_connect()


_SCRIPT_COMMANDS = ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO")


def _address(reply: str) -> Address:
    """The node a MOVED or ASK reply names: 'MOVED 3999 127.0.0.1:6381'."""
    host, _, port = reply.split()[2].rpartition(":")
    return host, int(port)
