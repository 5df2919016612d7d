"""How the protocol steps a direct answer's coroutine without an asyncio Task.

A direct answer (runtime/http_protocol.py) is stepped by the protocol itself: its first
step runs as the request's headers complete, and each later one when the future it
awaited is done. These run the real server configuration (`uvicorn_config`) in this
process around a small app whose `direct` answers make each kind of wait: none, a
future, `asyncio.sleep(0)` (a bare yield), a timer, and an awaitable that yields
something no Task would accept, which must end in the app's own 500, not a hung request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from runtime.processes import free_port
from runtime.server_config import uvicorn_config
from runtime.settings import Settings
from tests.support.raw_http import Reader, connect
from tests.support.waiting import wait_until

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]


def ok(body: bytes) -> Answer:
    return 200, [(b"content-length", str(len(body)).encode())], body


class NotAFuture:
    def __await__(self) -> Generator[Any, None, None]:
        yield 5  # what asyncio's Task refuses ("bad yield")


class SteppingApp:
    """ASGI app offering direct answers; the ASGI way (taken by a request pipelined behind
    an answer in progress) gives the same answers, as the service's framework does."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def direct(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> Coroutine[Any, Any, Answer] | None:
        answers: dict[str, Callable[[], Coroutine[Any, Any, Answer]]] = {
            "/at-once": self.at_once,
            "/future": self.future,
            "/sleeps": self.sleeps,
            "/not-a-future": self.not_a_future,
        }
        make = answers.get(path)
        return None if make is None else self.guarded(make())

    async def guarded(self, answering: Coroutine[Any, Any, Answer]) -> Answer:
        # As the edge does: any failure is the app's 500.
        try:
            return await answering
        except Exception as error:
            self.failures.append(repr(error))
            return 500, [(b"content-length", b"0")], b""

    async def at_once(self) -> Answer:
        return ok(b"at once")

    async def future(self) -> Answer:
        loop = asyncio.get_running_loop()
        waited: asyncio.Future[bytes] = loop.create_future()
        loop.call_soon(waited.set_result, b"a future")
        return ok(await waited)

    async def sleeps(self) -> Answer:
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        return ok(b"slept")

    async def not_a_future(self) -> Answer:
        await NotAFuture()
        return ok(b"never")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            for kind in ("startup", "shutdown"):
                await receive()
                await send({"type": f"lifespan.{kind}.complete"})
            return
        answering = self.direct(scope["method"], scope["path"], scope["headers"])
        assert answering is not None
        status, headers, body = await answering
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, SteppingApp]]:
    store: Path = tmp_path_factory.mktemp("stepping") / "events.sqlite"
    app = SteppingApp()
    chosen = free_port()
    config = uvicorn_config(
        app, Settings(EVENT_STORE_URL=f"sqlite:///{store}"), host="127.0.0.1", port=chosen
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, deadline=10)
    yield chosen, app
    server.should_exit = True
    thread.join(10)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("path", "body"),
    [("/at-once", b"at once"), ("/future", b"a future"), ("/sleeps", b"slept")],
)
def test_a_direct_answer_is_written_whatever_it_waited_for(
    served: tuple[int, SteppingApp], path: str, body: bytes
) -> None:
    port, _ = served
    with connect(port) as sock:
        reader = Reader(sock)
        for _ in range(3):  # and again on the kept connection
            sock.sendall(get(path))
            answer = reader.answer()
            assert (answer.status, answer.body) == (200, body)


def test_pipelined_direct_answers_that_wait_come_back_in_order(
    served: tuple[int, SteppingApp],
) -> None:
    port, _ = served
    paths = ["/sleeps", "/at-once", "/future", "/sleeps", "/at-once"]
    with connect(port) as sock:
        sock.sendall(b"".join(get(path) for path in paths))
        reader = Reader(sock)
        bodies = [reader.answer().body for _ in paths]
    assert bodies == [b"slept", b"at once", b"a future", b"slept", b"at once"]


def test_awaiting_what_is_not_a_future_ends_in_the_apps_500_and_the_connection_serves_on(
    served: tuple[int, SteppingApp],
) -> None:
    port, app = served
    with connect(port) as sock:
        reader = Reader(sock)
        sock.sendall(get("/not-a-future"))
        assert reader.answer().status == 500
        sock.sendall(get("/at-once"))
        assert reader.answer().body == b"at once"
    assert any("not an asyncio future" in failure for failure in app.failures)
