"""Every error leaves as JSON `{"detail": ...}`; nothing ever carries a traceback.

`error_body` is the one renderer: the edge pipeline, the fast paths, the HTTP protocol's
own refusals (431, 408) and the framework's exception handlers all answer with it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("customers.http")

INTERNAL_ERROR = "Internal server error."
MAX_REPORTED_ERRORS = 20
MAX_EXCERPT_CHARS = 64
MAX_MESSAGE_CHARS = 200
REQUEST_ID_KEY = "edge.request_id"  # set by the edge pipeline on every request's scope
LOGGED = "_edge_logged"


class ApiError(Exception):
    """An HTTP refusal raised at the edge: status, detail and optional headers."""

    def __init__(
        self, status_code: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers or {})


def error_body(detail: str) -> bytes:
    return orjson.dumps({"detail": detail})


def error_response(
    status_code: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        error_body(detail), status_code=status_code, headers=headers, media_type="application/json"
    )


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def _http_exception(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


def validation_error_body(errors: Sequence[Mapping[str, Any]]) -> bytes:
    """FastAPI's list of errors, with inputs cut to a short excerpt and never converted."""
    return orjson.dumps({"detail": [_reported(error) for error in errors[:MAX_REPORTED_ERRORS]]})


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return Response(validation_error_body(exc.errors()), 422, media_type="application/json")


def _reported(error: Mapping[str, Any]) -> dict[str, Any]:
    reported: dict[str, Any] = {
        "type": str(error.get("type", "")),
        "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
        "msg": _cut(str(error.get("msg", "")), MAX_MESSAGE_CHARS),
    }
    excerpt = _excerpt(error.get("input"))
    if excerpt is not None:
        reported["input"] = excerpt
    return reported


def _excerpt(value: Any) -> Any:
    """A scalar input as it was sent, shortened; containers and odd values are left out."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else None
    if isinstance(value, str):
        return _cut(value, MAX_EXCERPT_CHARS)
    if isinstance(value, Decimal):  # its text is bounded by the parser; never int() it
        return _cut(str(value), MAX_EXCERPT_CHARS)
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def log_unexpected(
    error: BaseException,
    method: str,
    path: str,
    request_id: str | None = None,
    logger: logging.Logger = log,
) -> str:
    """Log an unhandled error with its traceback; return the request id the reply names."""
    request_id = request_id or uuid.uuid4().hex
    if getattr(error, LOGGED, False):
        return request_id
    with contextlib.suppress(AttributeError):  # re-raised by the framework after its reply
        setattr(error, LOGGED, True)
    logger.error(
        "unhandled error request_id=%s %s %s: %s: %s",
        request_id, method, path, type(error).__name__, error, exc_info=error,
    )  # fmt: skip
    return request_id


async def _unexpected(request: Request, exc: Exception) -> Response:
    log_unexpected(exc, request.method, request.url.path, request.scope.get(REQUEST_ID_KEY))
    return error_response(500, INTERNAL_ERROR)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
