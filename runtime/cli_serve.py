"""`customers serve | read-api | write-api`: the HTTP processes.

`serve` is everything in one process: one uvicorn server with the write and read APIs,
and the projector in a thread. SIGTERM or SIGINT stops it in order: uvicorn stops
accepting and finishes the requests in flight, then the projector stops between pages,
then the stores close (an embedded Redis last, flushing its AOF). Acknowledged writes
are in the event store before they are acknowledged, so a stop loses nothing; the
projector simply resumes from its recorded position on the next start.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

# The stores, the framework and the server are imported by the commands that run them,
# so that `customers --help` and `customers tokens ...` start in a fraction of a second.
if TYPE_CHECKING:
    from runtime.container import Container
    from runtime.settings import Settings

log = logging.getLogger("customers.serve")

ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 (a file name)
FIRST_ADMIN_NAME = "admin"
PROJECTOR_STOP_SECONDS = 30.0


def _settings() -> Settings:
    """The settings, HOST:PORT checked: called before the framework's and stores' imports,
    so that a refusal is told at once."""
    from runtime.cli_common import load_settings

    settings = load_settings()
    _check_listen(settings.HOST, settings.PORT)
    return settings


def _open(settings: Settings) -> Container:
    from runtime.cli_common import open_container

    container = open_container(settings)
    logging.basicConfig(
        level=container.settings.LOG_LEVEL.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return container


def _fail(message: str) -> typer.Exit:
    from runtime.cli_common import fail

    return fail(message)


def _check_listen(host: str, port: int) -> None:
    """Fail in one line naming HOST or PORT if HOST:PORT cannot be listened on.

    Checked before any store or thread starts; otherwise uvicorn reports a busy port or an
    unknown host only in its log, after the embedded Redis and the projector are up.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise _fail(f"HOST: cannot listen on {host!r} ({error.strerror})") from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise _fail(f"PORT: {host}:{port} is already in use") from None
                raise _fail(f"HOST: cannot listen on {host}:{port} ({error.strerror})") from None


def _redis_url(container: Container, *, must_answer: bool = False) -> str:
    """The read model's Redis URL, started if embedded; with must_answer, also PINGed.

    A process that projects cannot start without Redis, so it is asked before anything
    is written (an unusable REDIS_URL used to surface as a traceback after the admin key
    was issued); a read API starts anyway and answers 503 until Redis is back.
    """
    from runtime.cli_common import redis_unusable

    try:
        url = container.start_redis()
        if must_answer:
            container.redis.ping()
    except Exception as error:  # not startable or not reachable: one line, no traceback
        container.close()
        raise redis_unusable(container, error) from None
    return url


def ensure_admin_key(container: Container) -> Path | None:
    """On a first start (no keys at all), issue an admin key into DATA_DIR/admin.token."""
    from write_side.errors import ApiKeyNameTakenError

    service = container.write_service
    if service.has_api_keys():
        return None
    data_dir = container.settings.DATA_DIR
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / ADMIN_TOKEN_FILE
    # Open the file before issuing, so a key is never issued that nobody can read.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # also when the file existed with laxer rights
        try:
            issued = service.issue_api_key(FIRST_ADMIN_NAME, "admin")
        except ApiKeyNameTakenError:  # another process won the first start
            return None
        os.ftruncate(descriptor, 0)  # only the winner of a simultaneous first start writes
        os.write(descriptor, (issued.key + "\n").encode())
    finally:
        os.close(descriptor)
    log.warning("first start: an admin API key was written to %s (mode 0600)", path.resolve())
    return path


def _uvicorn(app: Any, container: Container) -> None:
    """Run one uvicorn server until SIGTERM/SIGINT, then return normally."""
    import uvicorn

    from runtime.server_config import uvicorn_config

    settings = container.settings
    app.state.settle_heap = True  # a long-lived server: see runtime.http._settle_heap
    server = uvicorn.Server(uvicorn_config(app, settings))
    # uvicorn re-raises the stop signal through the handlers it found once it has shut
    # down; these make that a no-op, so the cleanup below runs and the exit code is 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        server.run()
    except SystemExit:  # how uvicorn gives up when it cannot bind or start the app
        if server.started:
            raise
    if not server.started:
        raise _fail(f"cannot serve on {settings.HOST}:{settings.PORT} (see the log above)")


def serve() -> None:
    """All in one: write API, read API and projector in one process on HOST:PORT."""
    settings = _settings()
    from projections.generation import LayoutMismatchError
    from projections.live_loop import run_live
    from projections.projector import Projector
    from runtime.http import build_app
    from runtime.redis_supervisor import RedisSupervisor
    from runtime.single_projector import ProjectorRunningError, hold_projector_lock, sqlite_path

    container = _open(settings)
    stop = threading.Event()
    projector_thread: threading.Thread | None = None
    lock = None
    try:
        # Redis is checked first: an unusable REDIS_URL is refused before anything (the
        # lock file included) is written.
        redis_url = _redis_url(container, must_answer=True)
        database = sqlite_path(settings.EVENT_STORE_URL)
        if database is not None:  # SQLite has one projector: this one, or say who has it
            try:
                lock = hold_projector_lock(database)
            except ProjectorRunningError as error:
                raise _fail(str(error)) from None
        try:
            ensure_admin_key(container)
        except OSError as error:
            raise _fail(f"DATA_DIR: cannot write the admin key file ({error})") from None
        except Exception as error:  # the store went away after opening: one line
            raise _fail(f"EVENT_STORE_URL: cannot use the event store ({error})") from None
        applied = [0]

        def count(_: int, events: int) -> None:
            applied[0] += events

        try:
            projector = Projector(
                container.write_service.recorder,
                container.redis,
                container.redis_keys,
                on_page=count,
            )
        except LayoutMismatchError as error:
            raise _fail(f"REDIS_URL: {error}") from None
        projector_thread = threading.Thread(
            target=run_live, args=(projector, stop), name="projector", daemon=True
        )
        projector_thread.start()
        if container.embedded_redis is not None:  # ours to bring back if it dies
            supervisor = RedisSupervisor(container.embedded_redis)
            threading.Thread(
                target=supervisor.run, args=(stop,), name="redis-supervisor", daemon=True
            ).start()
        app = build_app(
            container, write=True, read=True, redis_url=redis_url, wake_projector=projector.notify
        )
        app.state.projector_running = projector_thread.is_alive  # for /readyz
        app.state.read_side.metrics.gauge(
            "projector_events_applied_total",
            "Events this process's projector has applied since it started",
            lambda: applied[0],
            kind="counter",
        )
        _uvicorn(app, container)
    finally:
        stop.set()
        was_serving = projector_thread is not None
        if projector_thread is not None:
            projector_thread.join(PROJECTOR_STOP_SECONDS)
        container.close()
        if lock is not None:
            lock.close()
        if was_serving:  # a refusal at start stays the one line it printed
            log.info("stopped")


def read_api() -> None:
    """The staff read API alone (GET /api/customers/{id}, /healthz, /readyz, /metrics)."""
    settings = _settings()
    from runtime.http import build_app

    container = _open(settings)
    try:
        app = build_app(container, write=False, read=True, redis_url=_redis_url(container))
        _uvicorn(app, container)
    finally:
        container.close()


def write_api() -> None:
    """The producers' write API alone."""
    settings = _settings()
    from runtime.http import build_app

    container = _open(settings)
    try:
        _uvicorn(build_app(container, write=True, read=False), container)
    finally:
        container.close()


# Shown by `serve --help` and the other serving commands; a test keeps it equal to the
# fields of runtime.settings.Settings (importing those here would slow every --help).
VARIABLES = "\n\n".join(
    (
        "Configured by environment variables; a bad value is one line naming it:",
        "EVENT_STORE_URL: sqlite:///PATH or postgresql://user:pass@host:port/db"
        "?sslmode=... (default: DATA_DIR/events.sqlite)",
        "REDIS_URL: redis://host:port/db or rediss://... (default: an embedded Redis)",
        "DATA_DIR: the embedded stores and admin.token (default: ./data)",
        "HOST, PORT: where to listen (default: 127.0.0.1, 8000)",
        "REDIS_PREFIX: prefix of every read model key (default: customers)",
        "MIN_POSITION_WAIT_SECONDS: longest X-Min-Position wait (default: 2)",
        "LOG_LEVEL: DEBUG, INFO, WARNING, ERROR or CRITICAL (default: INFO)",
        "MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HEADER_COUNT, HEADER_TIMEOUT_SECONDS: "
        "request bounds (default: 65536, 16384, 100, 10)",
    )
)


def register(app: typer.Typer) -> None:
    app.command("serve", epilog=VARIABLES)(serve)
    app.command("read-api", epilog=VARIABLES)(read_api)
    app.command("write-api", epilog=VARIABLES)(write_api)
