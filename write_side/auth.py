"""Producers' credentials: Token keys resolved against ApiKey events, cached briefly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from edge.errors import ApiError
from edge.token_header import (
    INVALID_TOKEN,
    PERMISSION_DENIED,
    TokenHeaderError,
    key_from_header,
)
from write_side.application import CustomerService
from write_side.key_directory import WRITE_ROLES, KeyDirectory

WWW_AUTHENTICATE = {"WWW-Authenticate": "Token"}
STORE_UNAVAILABLE = "Event store unavailable."
RETRY_AFTER = {"Retry-After": "1"}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


# Dependencies that never block are coroutines: FastAPI runs a plain function in a worker
# thread, and each such hop cost more than the rest of a refusal (about 0.2 ms apiece).


async def get_service(request: Request) -> CustomerService:
    service: CustomerService = request.app.state.write_service
    return service


async def get_key_directory(request: Request) -> KeyDirectory:
    directory: KeyDirectory = request.app.state.write_keys
    return directory


async def authenticated_producer(
    directory: Annotated[KeyDirectory, Depends(get_key_directory)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """A caller with role producer or admin (DRF's 401/403 wording otherwise)."""
    try:
        key = key_from_header(authorization)
    except TokenHeaderError as error:
        raise ApiError(401, error.detail, WWW_AUTHENTICATE) from None
    arrived = time.monotonic()
    entry = directory.known(key, arrived)
    if entry is None:  # only the store can tell: ask it off the event loop
        try:
            entry = await run_in_threadpool(directory.lookup, key, arrived)
        except (OperationalError, InterfaceError):
            raise ApiError(503, STORE_UNAVAILABLE, RETRY_AFTER) from None
    if entry is None or entry.revoked:
        raise ApiError(401, INVALID_TOKEN, WWW_AUTHENTICATE)
    if entry.role not in WRITE_ROLES:
        raise ApiError(403, PERMISSION_DENIED)
    return Principal(entry.name, entry.role)


Producer = Annotated[Principal, Depends(authenticated_producer)]
Service = Annotated[CustomerService, Depends(get_service)]
