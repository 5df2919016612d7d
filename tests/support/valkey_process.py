"""A Valkey server (the service's embedded binary) a test can kill, wipe, restore and restart.

It keeps one port across restarts, so a `customers serve` pointed at it by REDIS_URL sees
the same address come back, as after a crash or a restore. AOF is on (fsync every
second), as in production; its files live in `folder`.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import redis

from runtime.processes import die_with_parent, free_port
from runtime.redis_store import _binary
from tests.support.waiting import wait_until


class ValkeyProcess:
    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.password = password
        secret = f":{password}@" if password else ""
        self.url = f"redis://{secret}127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            str(_binary()),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.folder),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", "valkey.log",
            *(["--requirepass", self.password] if self.password else []),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
        assert wait_until(self._answers, deadline=15), "Valkey did not start"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def kill(self) -> None:
        """SIGKILL: what it had not written to its AOF is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        """SIGTERM: Valkey writes out its AOF, then exits."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def wipe(self) -> None:
        """Delete every data file (the server must be down): it will start empty."""
        for entry in self.folder.iterdir():
            if entry.name != "valkey.log":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def copy_files_to(self, destination: Path) -> None:
        """A backup of the data files as they are (take it with the server stopped)."""
        shutil.copytree(self.folder, destination, ignore=shutil.ignore_patterns("valkey.log"))

    def restore_files_from(self, backup: Path) -> None:
        """Put an older copy back (the server must be down)."""
        self.wipe()
        shutil.copytree(backup, self.folder, dirs_exist_ok=True)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False
