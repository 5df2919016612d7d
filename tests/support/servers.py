"""Real PostgreSQL and Redis for tests: the ones configured, else embedded ones from wheels.

TEST_POSTGRES_URL / TEST_REDIS_URL name external servers (CI points them at the machine's
own). Unset, one embedded server of each kind is started on first use, shared by the whole
test session and stopped at exit (see tests/support/embedded.py). A server that merely
happens to listen on a default port is never used: tests must not depend on, or write to,
whatever a developer runs locally.
"""

from __future__ import annotations

import os
from functools import cache

from tests.support.embedded import start_postgres, start_redis


@cache
def postgres_admin_url() -> str:
    """A URL with rights to create schemas and databases."""
    configured = os.environ.get("TEST_POSTGRES_URL")
    if configured:
        return configured
    return start_postgres().url


@cache
def redis_url() -> str:
    """A Redis URL; tests keep to their own key prefix on it."""
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        return configured
    return start_redis()
