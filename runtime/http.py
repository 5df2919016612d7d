"""FastAPI applications assembled from the routers of each side."""

from __future__ import annotations

from fastapi import FastAPI

from edge.errors import install_error_handlers
from runtime.container import Container
from write_side.api import router as write_router

DESCRIPTION = (
    "Customers and orders, event-sourced, with an exact running-totals read model. "
    "Authenticate with `Authorization: Token <key>`."
)


def create_write_app(container: Container) -> FastAPI:
    """The producers' API alone."""
    app = FastAPI(title="Customers write API", description=DESCRIPTION, version="0.1.0")
    app.state.write_service = container.write_service
    app.state.write_keys = container.write_keys
    install_error_handlers(app)
    app.include_router(write_router)
    return app
