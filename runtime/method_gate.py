"""405 as DRF answers it: the caller is authenticated and authorized first, then refused.

A path that exists but not for the request's method is answered 401/403 (or 503 when the
keys cannot be checked) exactly as a served method would be, and only then
`405 Method "X" not allowed.` with an `Allow` that lists every method served on the path,
whichever route serves it. Paths outside /api need no credentials and get the 405 alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.routing import BaseRoute, Match, Route

from edge.access_policy import (
    READ_CUSTOMERS,
    WRITE_EVENTS,
    AccessRefusedError,
    authorize_header,
    may,
)
from edge.errors import ApiError, error_response
from edge.token_header import PERMISSION_DENIED
from read_side.read_side import ReadSide
from write_side.auth import RETRY_AFTER, as_api_error, authorized_entry
from write_side.key_directory import KeyDirectory

NOT_ALLOWED = 'Method "{method}" not allowed.'
READ_UNAVAILABLE = "The read model is unavailable; retry shortly."
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# What each method asks of the caller; any other method writes.
PERMISSION_BY_METHOD = {"GET": READ_CUSTOMERS, "HEAD": READ_CUSTOMERS}

# The role of the caller a request's Authorization header names; raises ApiError.
RoleOf = Callable[[bytes | None], Awaitable[str]]


def read_grants_role(read_side: ReadSide) -> RoleOf:
    """Roles from the read side's cached keys: no I/O, 503 while they are stale."""

    async def role_of(authorization: bytes | None) -> str:
        state = read_side.state
        if not read_side.started or not state.is_fresh:
            raise ApiError(503, READ_UNAVAILABLE, RETRY_AFTER)
        try:
            return authorize_header(authorization, state.grants, None).role
        except AccessRefusedError as refusal:
            raise as_api_error(refusal) from None

    return role_of


def key_directory_role(directory: KeyDirectory) -> RoleOf:
    """Roles from the event store's keys, as the write routes check them."""

    async def role_of(authorization: bytes | None) -> str:
        return (await authorized_entry(directory, authorization, None)).role

    return role_of


def served_methods(routes: Iterable[BaseRoute], request: Request) -> tuple[str, ...]:
    """Every method some route serves on the request's path, in the usual order."""
    methods: set[str] = set()
    for route in _routes(routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE and route.methods:
            methods |= route.methods
    return tuple(method for method in METHOD_ORDER if method in methods)


def install_method_gate(app: FastAPI, role_of: RoleOf, *routers: APIRouter) -> None:
    """Answer the framework's 405s the DRF way (see the module docstring).

    `routers` are those the app includes: the framework keeps included routes apart from
    `app.routes`, and the gate must see every route that serves a path.
    """

    def routes() -> Iterator[BaseRoute]:
        yield from app.routes
        for router in routers:
            yield from router.routes

    async def method_not_allowed(request: Request, _: Exception) -> Response:
        allowed = served_methods(routes(), request)
        if request.url.path.startswith("/api/"):
            try:
                role = await role_of(_authorization(request))
            except ApiError as refusal:
                return error_response(refusal.status_code, refusal.detail, _only_401(refusal))
            if not any(
                may(role, PERMISSION_BY_METHOD.get(method, WRITE_EVENTS)) for method in allowed
            ):
                return error_response(403, PERMISSION_DENIED)
        detail = NOT_ALLOWED.format(method=request.method)
        return error_response(405, detail, {"Allow": ", ".join(allowed)})

    app.add_exception_handler(405, method_not_allowed)


def _only_401(refusal: ApiError) -> dict[str, str]:
    return refusal.headers if refusal.status_code in (401, 503) else {}


def _authorization(request: Request) -> bytes | None:
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return None


def _routes(routes: Iterable[BaseRoute]) -> Iterable[Route]:
    for route in routes:
        if isinstance(route, Route):
            yield route
