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

from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError
from psycopg.errors import DuplicateObject, DuplicateTable

from runtime.settings import event_store_env
from write_side.application import CustomerService

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
