"""The uvicorn configuration the service runs with, in one place.

`customers serve | read-api | write-api` serve with it, and tests and benchmarks that
need the real server build it here too, so they measure exactly what runs.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from runtime.http_protocol import HeaderLimits, protocol_class
from runtime.settings import Settings

GRACEFUL_SHUTDOWN_SECONDS = 20


def header_limits(settings: Settings) -> HeaderLimits:
    return HeaderLimits(
        max_bytes=settings.MAX_HEADER_BYTES,
        max_count=settings.MAX_HEADER_COUNT,
        timeout_seconds=settings.HEADER_TIMEOUT_SECONDS,
    )


def uvicorn_config(
    app: Any, settings: Settings, *, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    """The server for `app`: on HOST:PORT from `settings` unless `host`/`port` are given."""
    # A ServiceApp is entered at its edge pipeline, what its own __call__ would do first.
    served = getattr(app, "edge", None) or app
    return uvicorn.Config(
        served,
        host=settings.HOST if host is None else host,
        port=settings.PORT if port is None else port,
        loop="uvloop",
        http=protocol_class(header_limits(settings)),
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # nothing here uses client addresses
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
