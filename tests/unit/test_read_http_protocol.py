"""Responses leave in one write: a loop iteration's writes are gathered, close flushes first."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from runtime.http_writes import CoalescingTransport


class RecordingTransport:
    """Stands in for the socket transport and records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


def wrap(transport: RecordingTransport, loop: asyncio.AbstractEventLoop) -> CoalescingTransport:
    return CoalescingTransport(cast(asyncio.Transport, transport), loop)


def test_writes_in_one_loop_iteration_are_sent_together() -> None:
    async def scenario() -> list[bytes]:
        transport = RecordingTransport()
        coalescing = wrap(transport, asyncio.get_running_loop())
        coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
        coalescing.write(b'{"id":1}')
        assert transport.sent == []  # nothing leaves before the iteration ends
        await asyncio.sleep(0)
        coalescing.write(b"next")
        await asyncio.sleep(0)
        return transport.sent

    assert asyncio.run(scenario()) == [b'HTTP/1.1 200 OK\r\n\r\n{"id":1}', b"next"]


def test_closing_sends_what_is_pending_first() -> None:
    async def scenario() -> tuple[list[bytes], bool]:
        transport = RecordingTransport()
        coalescing = wrap(transport, asyncio.get_running_loop())
        coalescing.write(b"last words")
        coalescing.close()
        await asyncio.sleep(0)
        return transport.sent, transport.closed

    assert asyncio.run(scenario()) == ([b"last words"], True)


def test_other_attributes_are_the_real_transports() -> None:
    async def scenario() -> Any:
        coalescing = wrap(RecordingTransport(), asyncio.get_running_loop())
        return coalescing.get_extra_info("sockname")

    assert asyncio.run(scenario()) == ("127.0.0.1", 8000)
