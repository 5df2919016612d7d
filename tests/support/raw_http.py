"""HTTP/1.1 over a raw socket: what a test needs to send odd bytes and read answers in order."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

ANSWER_WAIT = 10.0  # far beyond any honest answer


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reader:
    """Reads HTTP/1.1 answers with Content-Length off one raw socket."""

    sock: socket.socket
    buffer: bytes = b""
    eof: bool = False

    def fill(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""  # a reset after the answer: the close came before our bytes ran out
        self.eof = not data
        self.buffer += data

    def answer(self, to_head: bool = False) -> Answer:
        """The next answer; `to_head`: it answers a HEAD (Content-Length, but no body)."""
        while b"\r\n\r\n" not in self.buffer and not self.eof:
            self.fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        if not status_line.startswith("HTTP/1."):  # bytes left of an answer read wrongly
            raise ValueError(f"not a status line: {status_line[:80]!r}")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if to_head else int(headers.get("content-length", "0"))
        while len(self.buffer) < length and not self.eof:
            self.fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    def wait_closed(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            while not self.eof:
                self.fill()
        except TimeoutError:
            return False
        return not self.buffer


def connect(port: int, timeout: float = ANSWER_WAIT) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)
