"""The all-in-one app as `customers serve` wires it, in this process, on a real port."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from projections.live_loop import run_live
from runtime.container import Container
from runtime.http import ServiceApp, build_app
from runtime.settings import Settings
from tests.support.live_app import serving
from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Running:
    base_url: str
    admin_key: str
    container: Container
    app: ServiceApp


@contextmanager
def all_in_one(event_store_url: str, redis_url: str, redis_prefix: str) -> Iterator[Running]:
    """Write API + read API on one server, the projector following in a thread."""
    settings = Settings(
        EVENT_STORE_URL=event_store_url, REDIS_URL=redis_url, REDIS_PREFIX=redis_prefix
    )
    container = Container(settings)
    container.start_redis()
    stop = threading.Event()
    projector = threading.Thread(target=run_live, args=(container.projector, stop), daemon=True)
    try:
        admin_key = container.write_service.issue_api_key("e2e-admin", "admin").key
        # Projected before the app starts, so the read side's first look at the keys finds
        # it (else the test waited for its next look, up to REFRESH_SECONDS later).
        container.projector.catch_up()
        projector.start()
        app = build_app(container, write=True, read=True, wake_projector=container.projector.notify)
        with serving(app) as base_url:
            # Staff reads need the key projected; writes check the event store directly.
            key_hash = hashlib.sha256(admin_key.encode()).hexdigest()
            assert wait_until(lambda: key_hash in app.state.read_side.state.grants)
            yield Running(base_url, admin_key, container, app)
    finally:
        stop.set()
        if projector.is_alive():
            projector.join(timeout=10)
        container.close()
