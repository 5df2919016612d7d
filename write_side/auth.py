"""Producers' credentials: Token keys checked by the access policy on the key directory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from edge.access_policy import (
    WRITE_EVENTS,
    AccessRefusedError,
    Permission,
    authorize,
    presented_key,
)
from edge.errors import ApiError
from write_side.api_keys import ApiKeyEntry
from write_side.application import CustomerService
from write_side.key_directory import KeyDirectory

WWW_AUTHENTICATE = {"WWW-Authenticate": "Token"}
STORE_UNAVAILABLE = "Event store unavailable."
RETRY_AFTER = {"Retry-After": "1"}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


def as_api_error(refusal: AccessRefusedError) -> ApiError:
    """The HTTP error for a refusal; a 401 names the Token scheme."""
    headers = WWW_AUTHENTICATE if refusal.status == 401 else None
    return ApiError(refusal.status, refusal.detail, headers)


async def authorized_entry(
    directory: KeyDirectory, authorization: bytes | str | None, permission: Permission | None
) -> ApiKeyEntry:
    """The entry of the key a Token header presents, if the policy lets it act.

    Raises ApiError: 401/403 with DRF's wording, 503 if the store cannot tell.
    """
    try:
        key = presented_key(authorization)
        arrived = time.monotonic()
        entry = directory.known(key, arrived)
        if entry is None:  # only the store can tell: ask it off the event loop
            try:
                entry = await run_in_threadpool(directory.lookup, key, arrived)
            except (OperationalError, InterfaceError):
                raise ApiError(503, STORE_UNAVAILABLE, RETRY_AFTER) from None
        return authorize(entry, permission)
    except AccessRefusedError as refusal:
        raise as_api_error(refusal) from None


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
    """A caller whose role may write events (DRF's 401/403 wording otherwise)."""
    entry = await authorized_entry(directory, authorization, WRITE_EVENTS)
    return Principal(entry.name, entry.role)


Producer = Annotated[Principal, Depends(authenticated_producer)]
Service = Annotated[CustomerService, Depends(get_service)]
