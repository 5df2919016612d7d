"""Every error leaves as JSON `{"detail": ...}`; nothing ever carries a traceback."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("customers.http")

INTERNAL_ERROR = "Internal server error."


class ApiError(Exception):
    """An HTTP refusal raised at the edge: status, detail and optional headers."""

    def __init__(
        self, status_code: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(
    status_code: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps({"detail": detail}),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def _http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


def log_unexpected(
    error: BaseException,
    method: str,
    path: str,
    request_id: str | None = None,
    logger: logging.Logger = log,
) -> str:
    """Log an unhandled error with its traceback; return the request id the reply names."""
    request_id = request_id or uuid.uuid4().hex
    logger.error(
        "unhandled error request_id=%s %s %s: %s: %s",
        request_id, method, path, type(error).__name__, error, exc_info=error,
    )  # fmt: skip
    return request_id


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = log_unexpected(
        exc, request.method, request.url.path, request.headers.get("x-request-id")
    )
    return error_response(500, INTERNAL_ERROR, {"X-Request-Id": request_id})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(Exception, _unexpected)
