"""Opening the event store, also when several processes open a fresh one at once.

Every process that opens the store runs the library's idempotent schema statements. On
PostgreSQL two of them at the same moment can collide (`CREATE OR REPLACE FUNCTION`:
"tuple concurrently updated"; `CREATE TYPE`: a duplicate pg_type row; `CREATE TABLE IF NOT
EXISTS`: "relation already exists", when both looked before either created it), which is
what `docker compose up` does when the write API, the projector and the read API start
together. Such a collision means another process is doing the same work, so it is retried.
"""

from __future__ import annotations

import random
import time

import psycopg
from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError
from psycopg import conninfo
from psycopg.errors import DuplicateObject, DuplicateTable

from runtime.settings import event_store_env
from write_side.application import CustomerService
from write_side.store_adapter.options import libpq_options

ATTEMPTS = 8


def open_customer_service(event_store_url: str) -> CustomerService:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return CustomerService(event_store_env(event_store_url))
        except (InternalError, IntegrityError, ProgrammingError) as error:
            if attempt == ATTEMPTS or not is_schema_collision(error):
                raise
            time.sleep(random.uniform(0.05, 0.1 * attempt))
    raise AssertionError("unreachable")


def is_schema_collision(error: Exception) -> bool:
    """Whether opening failed because another process created the same schema object."""
    if isinstance(error, ProgrammingError):  # else a real mistake, such as bad SQL
        return isinstance(error.__cause__, DuplicateTable | DuplicateObject)
    return True


def why_unreachable(event_store_url: str) -> str | None:
    """libpq's own reason a PostgreSQL store cannot be reached, in one line.

    The library's pool reports every failure alike ("couldn't get a connection after 2.00
    sec"); one direct attempt tells a wrong password, a missing database, a refused
    connection and an unknown host apart. None for a store that connects, or SQLite.
    """
    env = event_store_env(event_store_url)
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        return None
    options = {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": env["POSTGRES_PORT"],
        "user": env["POSTGRES_USER"],
        "password": env["POSTGRES_PASSWORD"],
        "connect_timeout": env["POSTGRES_CONNECT_TIMEOUT"],
        **libpq_options(env),
    }
    try:
        psycopg.connect(conninfo.make_conninfo(**options)).close()
    except psycopg.Error as error:
        return one_line(error)
    return None


def one_line(error: BaseException) -> str:
    """An error's message as one line (libpq's run over several, hints included)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
