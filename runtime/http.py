"""FastAPI applications assembled from the routers of each side."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from edge.errors import install_error_handlers
from projections.read_model import Keys
from read_side.api import CustomerFastPath, CustomerReader
from read_side.api import router as read_router
from read_side.metrics import RequestTimer
from read_side.read_side import ReadSide
from read_side.service import Health, healthz
from read_side.service import router as service_router
from runtime.container import Container
from write_side.api import router as write_router
from write_side.fast_orders import FastOrderPlacement

DESCRIPTION = (
    "Customers and orders, event-sourced, with an exact running-totals read model. "
    "Authenticate with `Authorization: Token <key>`."
)


def create_write_app(container: Container) -> ServiceApp:
    """The producers' API alone."""
    app = ServiceApp(title="Customers write API", description=DESCRIPTION, version="0.1.0")
    app.state.write_service = container.write_service
    app.state.write_keys = container.write_keys
    install_error_handlers(app)
    app.include_router(write_router)
    app.fast_path = FastOrderPlacement(app.framework, container.order_desk)
    app.add_api_route(
        "/healthz", healthz, response_model=Health, tags=["operations"], summary="Alive"
    )
    _document_validation_errors(app)
    return app


_ONE_LINE_DETAIL: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def _document_validation_errors(app: FastAPI) -> None:
    """Where a route documents 422 as `{"detail": str}`, allow FastAPI's list form too.

    Request validation errors keep FastAPI's standard body (the contract says so) while
    the edge refuses some values with a one-line detail, so a 422 can carry either form;
    the schema must say both or clients reject real answers.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in components:
            return schema
        listed = {"$ref": "#/components/schemas/HTTPValidationError"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                content = operation.get("responses", {}).get("422", {}).get("content", {})
                body = content.get("application/json")
                if body is None:
                    continue
                documented = body.get("schema")
                if documented == listed:  # the edge also refuses bad headers with one line
                    documented = _ONE_LINE_DETAIL
                body["schema"] = {"anyOf": [documented, listed]}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class ServiceApp(FastAPI):
    """A FastAPI app whose hottest routes are answered in front of the framework.

    `fast_path` (an ASGI app that hands everything else to `framework`) sees each
    request first; the framework's routing, dependencies and middleware serve the rest.
    """

    fast_path: ASGIApp | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
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
    app.add_middleware(RequestTimer, metrics=read_side.metrics)

    def current_reader() -> CustomerReader | None:
        return read_side.reader if read_side.started else None

    return CustomerFastPath(app.framework, current_reader, read_side.metrics)


def _read_side_lifespan(
    read_side: ReadSide,
) -> Callable[[FastAPI], Any]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await read_side.start()
        try:
            yield
        finally:
            await read_side.stop()

    return lifespan


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
        lifespan=_read_side_lifespan(read_side),
    )
    install_error_handlers(app)
    app.fast_path = _mount_read_side(app, read_side, _store_head(container))
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
        lifespan=_read_side_lifespan(read_side),
    )
    app.state.write_service = container.write_service
    app.state.write_keys = container.write_keys
    install_error_handlers(app)
    app.include_router(write_router)
    customer_reads = _mount_read_side(app, read_side, _store_head(container))
    app.fast_path = FastOrderPlacement(
        customer_reads, container.order_desk, observe=read_side.metrics.observe
    )
    if wake_projector is not None:
        # Orders placed by the desk wake it per batch; the framework's writes per request.
        container.order_desk.on_placed(wake_projector)
        app.add_middleware(WakeOnWrite, wake=wake_projector)
    _document_validation_errors(app)
    return app
