"""Configuration from the environment, validated once at start."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, unquote, urlparse

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from write_side.store_adapter.options import LIBPQ_ENV_PREFIX

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Query parameters EVENT_STORE_URL may carry for PostgreSQL. Those of libpq go to every
# connection as they are; a misspelt one is refused rather than dropped in silence (an
# ignored sslmode=require would connect in plain text).
STORE_URL_OPTIONS = ("pool_size", "schema", "host")
LIBPQ_OPTIONS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# What the eventsourcing library reads from the process environment besides what
# EVENT_STORE_URL sets. The projector and audit decode stored events themselves, so a
# compressed, encrypted or otherwise transcoded store would stop them: refused by name.
LIBRARY_VARIABLES = (
    "PERSISTENCE_MODULE",
    "INFRASTRUCTURE_FACTORY",
    "FACTORY_TOPIC",
    "TRANSCODER_TOPIC",
    "MAPPER_TOPIC",
    "CIPHER_TOPIC",
    "CIPHER_KEY",
    "COMPRESSOR_TOPIC",
    "IS_SNAPSHOTTING_ENABLED",
)
LIBRARY_PREFIXES = ("POSTGRES_", "SQLITE_", "CUSTOMERS_")


def library_variables_set(environ: dict[str, str]) -> list[str]:
    """The eventsourcing settings found in `environ`, which this service does not honour."""
    return sorted(
        name for name in environ if name in LIBRARY_VARIABLES or name.startswith(LIBRARY_PREFIXES)
    )


class Settings(BaseSettings):
    """Every variable the contract names, plus a few operational knobs."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=True, extra="ignore")

    EVENT_STORE_URL: str = ""  # unset: an SQLite file in DATA_DIR (see below)
    REDIS_URL: str | None = None
    DATA_DIR: Path = Path("./data")
    HOST: str = "127.0.0.1"
    PORT: Annotated[int, Field(ge=1, le=65535)] = 8000
    MIN_POSITION_WAIT_SECONDS: Annotated[float, Field(gt=0, le=60)] = 2.0
    REDIS_PREFIX: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")] = "customers"
    LOG_LEVEL: str = "INFO"
    # The HTTP edge's bounds: what one request may cost before it is refused.
    MAX_BODY_BYTES: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 64 * 1024
    MAX_HEADER_BYTES: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 16 * 1024
    MAX_HEADER_COUNT: Annotated[int, Field(ge=8, le=1000)] = 100
    HEADER_TIMEOUT_SECONDS: Annotated[float, Field(gt=0, le=300)] = 10.0

    @field_validator("LOG_LEVEL")
    @classmethod
    def _log_level_is_known(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return level

    @model_validator(mode="after")
    def _event_store_url_is_supported(self) -> Settings:
        if not self.EVENT_STORE_URL:
            # Beside the embedded Redis and the admin key, wherever the command runs.
            self.EVENT_STORE_URL = f"sqlite:///{self.DATA_DIR / 'events.sqlite'}"
        try:
            event_store_env(self.EVENT_STORE_URL)
        except ValueError as error:
            raise ValueError(f"EVENT_STORE_URL: {error}") from None
        return self

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url_is_supported(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("redis", "rediss", "unix") or (
            parsed.scheme != "unix" and not parsed.hostname
        ):
            raise ValueError("expected redis://host:port/db")
        return value


def event_store_env(url: str) -> dict[str, str]:
    """Map EVENT_STORE_URL to the eventsourcing library's persistence settings."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if parsed.netloc or not path.startswith("/") or path == "/":
            raise ValueError("expected sqlite:///PATH (relative) or sqlite:////PATH (absolute)")
        db_path = path[1:]
        if db_path != ":memory:":
            try:
                _private_file(Path(db_path))
            except OSError as error:
                raise ValueError(f"cannot create the directory for {db_path}: {error}") from None
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": db_path if db_path != ":memory:" else "file::memory:?cache=shared",
            "SQLITE_LOCK_TIMEOUT": "10",
        }
    if parsed.scheme in ("postgresql", "postgres"):
        dbname = unquote(parsed.path.lstrip("/"))
        query = parse_qs(parsed.query, keep_blank_values=True)
        for name in query:
            if name not in STORE_URL_OPTIONS + LIBPQ_OPTIONS:
                known = ", ".join(STORE_URL_OPTIONS + LIBPQ_OPTIONS)
                raise ValueError(f"unknown parameter {name!r} (known: {known})")
        sslmode = query.get("sslmode", ["prefer"])[0]
        if sslmode not in SSL_MODES:
            raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}")
        # libpq style: a socket directory may be given as ?host=/path
        host = parsed.hostname or query.get("host", [""])[0]
        if not host or not dbname:
            raise ValueError("expected postgresql://user:pass@host:port/db")
        try:
            port = parsed.port or 5432
        except ValueError:
            raise ValueError("the port is not a number") from None
        pool_size = _positive_int(query, "pool_size", 10)
        connect_timeout = _positive_int(query, "connect_timeout", 2)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": dbname,
            "POSTGRES_HOST": host,
            "POSTGRES_PORT": str(port),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": str(connect_timeout),
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": "10",
            "POSTGRES_LOCK_TIMEOUT": "5",
            "APPLICATION_RECORDER_TOPIC": (
                "write_side.store_adapter.recorder:FailFastPostgresApplicationRecorder"
            ),
        }
        if "schema" in query:
            env["POSTGRES_SCHEMA"] = query["schema"][0]
        for name in LIBPQ_OPTIONS:
            if name in query:
                env[LIBPQ_ENV_PREFIX + name.upper()] = query[name][0]
        return env
    raise ValueError("expected sqlite:///PATH or postgresql://user:pass@host:port/db")


def _private_file(path: Path) -> None:
    """Create the store's folder (0700) and file (0600) for its owner alone, if missing.

    Every event, key hash included, is in it; SQLite gives its journal files the same
    mode. Existing folders and files keep the modes their owner gave them.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _positive_int(query: dict[str, list[str]], name: str, default: int) -> int:
    """An optional positive integer query parameter of a store URL."""
    text = query.get(name, [str(default)])[0]
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name} must be a positive integer")
    return int(text)
