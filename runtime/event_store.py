"""Opening the event store, also when several processes open a fresh one at once.

Every process that opens the store runs the library's idempotent schema statements. On
PostgreSQL two of them at the same moment can collide (`CREATE OR REPLACE FUNCTION`:
"tuple concurrently updated"; `CREATE TYPE`: a duplicate pg_type row), which is what
`docker compose up` does when the write API, the projector and the read API start
together. Such a collision means another process is doing the same work, so it is retried.
"""

from __future__ import annotations

import random
import time

from eventsourcing.persistence import IntegrityError, InternalError

from runtime.settings import event_store_env
from write_side.application import CustomerService

ATTEMPTS = 8


def open_customer_service(event_store_url: str) -> CustomerService:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return CustomerService(event_store_env(event_store_url))
        except (InternalError, IntegrityError):
            if attempt == ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.1 * attempt))
    raise AssertionError("unreachable")
