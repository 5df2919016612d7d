"""Serve an ASGI app with a real uvicorn server on a free port, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from runtime.processes import free_port


class PromptServer(uvicorn.Server):
    """uvicorn's server, which stops as soon as `stop()` asks, not at its next tick.

    uvicorn looks at `should_exit` every 0.1 s, and then pauses 0.1 s for open connections
    to close even when there is none; a test stops its server at its end, and a run starts
    and stops a hundred of them.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._asked = asyncio.Event()

    async def main_loop(self) -> None:
        # uvicorn's loop (a tick every 0.1 s), woken at once by stop().
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._asked.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)  # requests to let finish: uvicorn's own way
            return
        # Nothing open (the tests' requests keep no connection alive): uvicorn's steps,
        # without the 0.1 s it pauses for open connections to close.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()

    def stop(self) -> None:
        self.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # its loop has closed: it stopped already
                self._loop.call_soon_threadsafe(self._asked.set)


@contextmanager
def serving(app: Any, *, startup_deadline: float = 10.0) -> Iterator[str]:
    """Yields the base URL once the server accepts requests; stops it on exit."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = PromptServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_deadline
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        thread.join(timeout=10)
