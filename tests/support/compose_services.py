"""Run a docker-compose.yml service's command locally, with its compose environment.

There is no container engine in CI, so each service runs here as a process: its `command`
with the installed `customers` script, its `environment` with the compose service names
(postgres, redis) pointed at the test servers. Only what must differ outside containers
changes: store addresses and credentials, HOST (0.0.0.0 -> 127.0.0.1), PORT (a free one)
and DATA_DIR (a folder per service, as each container has its own). A Redis key prefix
keeps the run apart from others sharing the test Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import httpx
import yaml

from runtime.processes import free_port
from tests.support import local_http
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
STORE_SERVICES = ("postgres", "redis")
START_DEADLINE_SECONDS = 60.0


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


@dataclass(frozen=True)
class ComposeStores:
    """Where the compose stores are, for this test: a fresh database and a key prefix."""

    postgres_url: str
    redis_url: str
    redis_prefix: str


def _repoint(compose_url: str, test_url: str, keep_path: bool) -> str:
    """The compose URL with the test server's address and credentials (and database)."""
    compose, test = urlparse(compose_url), urlparse(test_url)
    if compose.hostname not in STORE_SERVICES:
        return compose_url
    path = compose.path if keep_path else test.path
    return urlunparse(compose._replace(netloc=test.netloc, path=path, query=test.query))


def local_environment(
    environment: dict[str, str], stores: ComposeStores, data_dir: Path
) -> dict[str, str]:
    """The compose environment as it must be outside a container."""
    local = {name: str(value) for name, value in environment.items()}
    if "EVENT_STORE_URL" in local:
        local["EVENT_STORE_URL"] = _repoint(
            local["EVENT_STORE_URL"], stores.postgres_url, keep_path=False
        )
    if "REDIS_URL" in local:
        local["REDIS_URL"] = _repoint(local["REDIS_URL"], stores.redis_url, keep_path=True)
    if local.get("HOST") == "0.0.0.0":  # noqa: S104 (the compose value being mapped)
        local["HOST"] = "127.0.0.1"
    if "PORT" in local:
        local["PORT"] = str(free_port())
    if "DATA_DIR" in local:
        local["DATA_DIR"] = str(data_dir)
    local["REDIS_PREFIX"] = stores.redis_prefix
    return local


def process_environment(local: dict[str, str]) -> dict[str, str]:
    """A clean process environment: only what a container would also have, plus `local`.

    PYTHONPATH is kept too: the image holds the code under test, and here that is the code
    this test process imports (a checkout's, when it is not the one installed in the venv).
    """
    kept = ("PATH", "HOME", "LANG", "PYTHONPATH")
    inherited = {name: os.environ[name] for name in kept if name in os.environ}
    return {**inherited, "PYTHONUNBUFFERED": "1", **local}


def local_command(command: list[str]) -> list[str]:
    """The compose command with `customers` resolved to this environment's script."""
    program, *args = command
    if program == "customers":
        program = str(Path(sys.executable).parent / "customers")
    return [program, *args]


def healthcheck_path(service: dict[str, Any]) -> str | None:
    """The URL path a service's HTTP healthcheck requests, if it has one."""
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    marker = "http://127.0.0.1:8000"
    if marker not in test:
        return None
    return test.split(marker, 1)[1].split("'", 1)[0].split('"', 1)[0]


@dataclass
class RunningService:
    name: str
    process: subprocess.Popen[bytes]
    environment: dict[str, str]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.environment['HOST']}:{self.environment['PORT']}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class ServiceFailedError(AssertionError):
    """A compose service exited or never became healthy; carries its log tail."""


@contextmanager
def running(
    name: str,
    stores: ComposeStores,
    folder: Path,
    *,
    service: dict[str, Any] | None = None,
) -> Iterator[RunningService]:
    """Start the service as compose would configure it; stop it on exit."""
    with running_together({name: service}, stores, folder) as started:
        yield started[name]


@contextmanager
def running_together(
    services: dict[str, dict[str, Any] | None], stores: ComposeStores, folder: Path
) -> Iterator[dict[str, RunningService]]:
    """Start several services at once (None: as in the compose file); wait for their health."""
    with ExitStack() as stack:
        started = {
            name: stack.enter_context(
                _launched(name, spec or compose_services()[name], stores, folder)
            )
            for name, spec in services.items()
        }
        for name, spec in services.items():
            path = healthcheck_path(spec or compose_services()[name])
            if path is not None:
                wait_healthy(started[name], path)
        yield started


@contextmanager
def _launched(
    name: str, spec: dict[str, Any], stores: ComposeStores, folder: Path
) -> Iterator[RunningService]:
    data_dir = folder / name / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    local = local_environment(spec.get("environment", {}), stores, data_dir)
    log = folder / name / "output.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            local_command(list(spec["command"])),
            env=process_environment(local),
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield RunningService(name, process, local, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_healthy(service: RunningService, path: str) -> None:
    def healthy() -> bool:
        if service.process.poll() is not None:
            return True
        try:
            return local_http.get(service.base_url + path, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    became = wait_until(healthy, deadline=START_DEADLINE_SECONDS)
    if service.process.poll() is not None:
        raise ServiceFailedError(
            f"{service.name} exited with {service.process.returncode}:\n{service.log_tail()}"
        )
    if not became:
        raise ServiceFailedError(
            f"{service.name} did not answer {path} within {START_DEADLINE_SECONDS:.0f} s:\n"
            f"{service.log_tail()}"
        )
