"""libpq connection options (sslmode, ...) as they travel in the library's environment."""

from __future__ import annotations

from collections.abc import Mapping

# The library's PostgreSQL settings have no place for them: they travel as LIBPQ_SSLMODE=...
LIBPQ_ENV_PREFIX = "LIBPQ_"


def libpq_options(env: Mapping[str, str]) -> dict[str, str]:
    """The libpq connection options an environment mapping carries (sslmode, ...)."""
    return {
        name[len(LIBPQ_ENV_PREFIX) :].lower(): value
        for name, value in env.items()
        if name.startswith(LIBPQ_ENV_PREFIX)
    }
