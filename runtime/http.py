"""FastAPI applications assembled from the routers of each side."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from edge.errors import install_error_handlers
from edge.openapi import document_api
from edge.pipeline import EdgeLimits, EdgePipeline, Observer
from projections.read_model import Keys
from read_side.api import CustomerFastPath, CustomerReader
from read_side.api import router as read_router
from read_side.read_side import ReadSide
from read_side.service import Health, healthz
from read_side.service import router as service_router
from runtime.container import Container
from runtime.http_protocol import respond_at_once
from runtime.method_gate import install_method_gate, key_directory_role, read_grants_role
from write_side.api import router as write_router
from write_side.throughput.fast_orders import FastOrderPlacement

DESCRIPTION = (
    "Customers and orders, event-sourced, with an exact running-totals read model. "
    "Authenticate with `Authorization: Token <key>`."
)


def create_write_app(container: Container) -> ServiceApp:
    """The producers' API alone."""
    app = ServiceApp(
        title="Customers write API",
        description=DESCRIPTION,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(),
    )
    app.state.write_service = container.write_service
    app.state.write_keys = container.write_keys
    install_error_handlers(app)
    install_method_gate(app, key_directory_role(container.write_keys), write_router)
    app.include_router(write_router)
    app.fast_path = FastOrderPlacement(app.framework, container.order_desk)
    app.edge = EdgePipeline(app.dispatch, _limits(container), None, respond_at_once)
    app.add_api_route(
        "/healthz", healthz, response_model=Health, tags=["operations"], summary="Alive"
    )
    document_api(app)
    return app


def _limits(container: Container) -> EdgeLimits:
    return EdgeLimits(max_body_bytes=container.settings.MAX_BODY_BYTES)


class ServiceApp(FastAPI):
    """A FastAPI app whose hottest routes are answered in front of the framework.

    Every request passes `edge` (edge.pipeline) first; inside it `fast_path` (an ASGI
    app that hands everything else to `framework`) answers the hottest routes, and the
    framework's routing and dependencies serve the rest. Middleware added with
    `add_middleware` runs inside the framework only: cross-cutting concerns belong in
    the edge pipeline.
    """

    fast_path: ASGIApp | None = None
    edge: ASGIApp | None = None

    def __init__(self, **kwargs: Any) -> None:
        # `/x/` is not `/x`: no redirect before authentication, a 404 like any unknown path.
        super().__init__(redirect_slashes=False, **kwargs)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.edge is not None:
            await self.edge(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        if self.fast_path is not None:
            await self.fast_path(scope, receive, send)
        else:
            await self.framework(scope, receive, send)

    async def framework(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, send)


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
        redis_url or container.redis_url,
        Keys(container.settings.REDIS_PREFIX),
        min_position_wait=container.settings.MIN_POSITION_WAIT_SECONDS,
    )


def _store_head(container: Container) -> Callable[[], int]:
    recorder = container.write_service.recorder

    def head() -> int:
        return recorder.max_notification_id() or 0

    return head


def create_read_app(container: Container, redis_url: str | None = None) -> ServiceApp:
    """Staff reads alone: GET /api/customers/{id}, /healthz, /readyz, /metrics."""
    read_side = build_read_side(container, redis_url)
    app = ServiceApp(
        title="Customers read API",
        description=DESCRIPTION,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(read_side),
    )
    install_error_handlers(app)
    install_method_gate(app, read_grants_role(read_side), read_router, service_router)
    app.fast_path = _mount_read_side(app, read_side, _store_head(container))
    app.state.store_required = False  # reads need Redis only; /readyz reports the store
    app.edge = EdgePipeline(app.dispatch, _limits(container), _observer(read_side), respond_at_once)
    document_api(app)
    return app


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


def create_app(
    container: Container,
    redis_url: str | None = None,
    *,
    wake_projector: Callable[[], None] | None = None,
) -> ServiceApp:
    """All in one: the producers' API and the staff read API in one app."""
    read_side = build_read_side(container, redis_url)
    app = ServiceApp(
        title="Customers API",
        description=DESCRIPTION,
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(read_side),
    )
    app.state.write_service = container.write_service
    app.state.write_keys = container.write_keys
    install_error_handlers(app)
    install_method_gate(app, read_grants_role(read_side), write_router, read_router, service_router)
    app.include_router(write_router)
    customer_reads = _mount_read_side(app, read_side, _store_head(container))
    app.fast_path = FastOrderPlacement(customer_reads, container.order_desk)
    app.edge = EdgePipeline(app.dispatch, _limits(container), _observer(read_side), respond_at_once)
    if wake_projector is not None:
        # Orders placed by the desk wake it per batch; the framework's writes per request.
        container.order_desk.on_placed(wake_projector)
        app.add_middleware(WakeOnWrite, wake=wake_projector)
    document_api(app)
    return app
