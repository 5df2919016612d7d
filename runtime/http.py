"""FastAPI applications assembled from the routers of each side."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp

from edge.errors import install_error_handlers
from edge.openapi import document_api
from edge.pipeline import DirectRoute, EdgeLimits, EdgePipeline, Observer
from projections.read_model import Keys
from read_side.api import router as read_router
from read_side.customer_reader import CustomerReader
from read_side.fast_path import CustomerFastPath
from read_side.read_side import ReadSide
from read_side.service import Health, healthz
from read_side.service import router as service_router
from runtime.container import Container
from runtime.http_writes import respond_at_once
from runtime.method_gate import install_method_gate, key_directory_role, read_grants_role
from write_side.api import router as write_router
from write_side.throughput.fast_orders import FastOrderPlacement

DESCRIPTION = (
    "Customers and orders, event-sourced, with an exact running-totals read model. "
    "Authenticate with `Authorization: Token <key>`."
)


NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def _limits(container: Container) -> EdgeLimits:
    return EdgeLimits(max_body_bytes=container.settings.MAX_BODY_BYTES)


class ServiceApp(FastAPI):
    """A FastAPI app whose hottest routes are answered in front of the framework.

    Every request passes `edge` (edge.pipeline) first; inside it `fast_path` (an ASGI
    app that hands everything else to `framework`) answers the hottest routes, and the
    framework's routing and dependencies serve the rest. Cross-cutting concerns belong in
    the edge pipeline: `add_middleware` would run inside the framework only, skipping the
    fast paths, so it refuses; `add_framework_middleware` says that it means it.
    """

    fast_path: ASGIApp | None = None
    edge: ASGIApp | None = None
    direct_reads: DirectRoute | None = None

    def __init__(self, **kwargs: Any) -> None:
        # `/x/` is not `/x`: no redirect before authentication, a 404 like any unknown path.
        # FastAPI's own OpenTelemetry hooks stay off: the fast paths never pass through
        # them, so they would see only some requests, and asking whether a provider is
        # configured costs every framework request; /metrics covers every path.
        super().__init__(redirect_slashes=False, telemetry=NO_TELEMETRY, **kwargs)

    def add_middleware(self, middleware_class: Any, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "middleware here would skip the fast paths: add what every request needs to "
            "edge/pipeline.py, or call add_framework_middleware for the framework's routes"
        )

    def add_framework_middleware(self, middleware_class: Any, **options: Any) -> None:
        """Middleware around the framework's routes only (never the fast paths)."""
        super().add_middleware(middleware_class, **options)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # A coroutine function, as servers tell ASGI 3 apps by it; the serving commands
        # enter at `edge` itself (runtime.server_config), one layer less per request.
        if self.edge is not None:
            await self.edge(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    def dispatch(self, scope: Any, receive: Any, send: Any) -> Coroutine[Any, Any, None]:
        """Inside the edge: the fast paths, which hand the rest to the framework. Plain
        functions handing on the next layer's coroutine: each layer in between would
        otherwise be one more coroutine for every request to step through."""
        if self.fast_path is not None:
            return self.fast_path(scope, receive, send)  # type: ignore[return-value]
        return self.framework(scope, receive, send)

    def framework(self, scope: Any, receive: Any, send: Any) -> Coroutine[Any, Any, None]:
        return super().__call__(scope, receive, send)

    def direct_route(self) -> DirectRoute | None:
        """The route the server may answer before any ASGI request exists (the customer
        reads); off whenever the fast paths are."""
        return self.direct_reads if self.fast_path is not None else None


def _mount_read_side(
    app: ServiceApp, read_side: ReadSide, store_head: Callable[[], int] | None
) -> CustomerFastPath:
    """Mount the read routes; return the customer reads' fast path, in front of `app`."""
    app.state.read_side = read_side
    app.state.customer_reader = read_side.reader
    app.state.store_head = store_head
    app.include_router(read_router)
    app.include_router(service_router)

    def current_reader() -> CustomerReader | None:
        return read_side.reader if read_side.started else None

    return CustomerFastPath(app.framework, current_reader)


def _lifespan(read_side: ReadSide | None = None) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if read_side is not None:
            await read_side.start()
        if getattr(app.state, "settle_heap", False):  # set by the serving commands
            _settle_heap()
        try:
            yield
        finally:
            if read_side is not None:
                await read_side.stop()

    return lifespan


def _settle_heap() -> None:
    """Take what start-up built (routes, schemas, modules) out of the collector's sight.

    It lives as long as the process, yet every full collection walked it: hostile bodies
    that allocate thousands of containers set off full collections of 40-60 ms each, and
    every request waiting on the event loop paid for them.
    """
    gc.collect()
    gc.freeze()


def _observer(read_side: ReadSide) -> Observer:
    return read_side.metrics


def build_read_side(container: Container, redis_url: str | None) -> ReadSide:
    return ReadSide(
        redis_url or container.start_redis(),
        Keys(container.settings.REDIS_PREFIX),
        min_position_wait=container.settings.MIN_POSITION_WAIT_SECONDS,
    )


def _store_head(container: Container) -> Callable[[], int]:
    recorder = container.write_service.recorder

    def head() -> int:
        return recorder.max_notification_id() or 0

    return head


class WakeOnWrite:
    """ASGI middleware: after a successful write, wake the in-process projector at once.

    Without it the projector finds new events at its next poll; with it a read that
    waits for the write's position (X-Min-Position) is answered milliseconds sooner.
    """

    def __init__(self, app: Any, wake: Callable[[], None]) -> None:
        self._app = app
        self._wake = wake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self._app(scope, receive, send)
            return
        succeeded = False

        async def watching_send(message: Any) -> None:
            nonlocal succeeded
            if message["type"] == "http.response.start":
                succeeded = 200 <= message["status"] < 300
            await send(message)

        await self._app(scope, receive, watching_send)
        if succeeded:
            self._wake()


TITLES = {
    (True, True): "Customers API",
    (False, True): "Customers read API",
    (True, False): "Customers write API",
}


def build_app(
    container: Container,
    *,
    write: bool,
    read: bool,
    redis_url: str | None = None,
    wake_projector: Callable[[], None] | None = None,
) -> ServiceApp:
    """The HTTP app: the producers' API (`write`), the staff reads with /healthz, /readyz and
    /metrics (`read`), or both in one. `wake_projector`: an in-process projector to wake
    after each write."""
    if not (write or read):
        raise ValueError("an app serves writes, reads or both")
    read_side = build_read_side(container, redis_url) if read else None
    app = ServiceApp(
        title=TITLES[write, read],
        description=DESCRIPTION,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(read_side),
    )
    install_error_handlers(app)
    routers = [write_router] if write else []
    if read_side is not None:
        routers += [read_router, service_router]
        install_method_gate(app, read_grants_role(read_side), *routers)
    else:
        install_method_gate(app, key_directory_role(container.write_keys), *routers)
    inner: ASGIApp = app.framework
    if write:
        app.state.write_service = container.write_service
        app.state.write_keys = container.write_keys
        app.include_router(write_router)
    if read_side is not None:
        inner = app.direct_reads = _mount_read_side(app, read_side, _store_head(container))
        # Reads need Redis only: a read API stays ready while the event store is down.
        app.state.store_required = write
    else:
        app.add_api_route(
            "/healthz", healthz, response_model=Health, tags=["operations"], summary="Alive"
        )
    if write:
        inner = FastOrderPlacement(inner, container.order_desk, container.write_keys)
    app.fast_path = inner
    observer = None if read_side is None else _observer(read_side)
    app.edge = EdgePipeline(
        app.dispatch, _limits(container), observer, respond_at_once, app.direct_route
    )
    if wake_projector is not None:
        # Orders placed by the desk wake it per batch; the framework's writes per request.
        container.order_desk.on_placed(wake_projector)
        app.add_framework_middleware(WakeOnWrite, wake=wake_projector)
    document_api(app)
    return app
