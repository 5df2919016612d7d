"""/docs (Swagger UI) and /redoc (ReDoc), served with their assets by this service.

The pages load their scripts and styles from this service, never from a CDN, so they work
on a network without internet access. The assets come from the `fastapi-offline` package,
which vendors both viewers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")

# Swagger UI: the key entered under "Authorize" lives in the page only. A Token key is a
# long-lived secret; persisting it would keep it in the browser's local storage for good.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    "persistAuthorization": False,
    "displayRequestDuration": True,
}


def serve_documentation_pages(app: FastAPI) -> None:
    """Serve /docs and /redoc with their assets from this service, not from a CDN."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None, redoc_url=None: these pages are ours")
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root, assets = _roots(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            oauth2_redirect_url=None,  # no OAuth2 flow: Token keys are entered as they are
            swagger_ui_parameters={**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )

    async def redoc(request: Request) -> HTMLResponse:
        root, assets = _roots(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)


def _roots(request: Request) -> tuple[str, str]:
    """Where this app and its page assets are, behind whatever root path it is served at."""
    root: str = request.scope.get("root_path", "")
    return root, root + ASSETS_URL
