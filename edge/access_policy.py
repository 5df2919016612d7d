"""Who may do what: each role's permissions as data, the key hash, and the one decision.

No framework and no I/O: the ApiKey aggregate checks roles against it, both HTTP sides
and the method gate authorize with it, and the CLI offers its roles. A new role is one
line in PERMISSIONS.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Protocol, TypeVar

from edge.token_header import INVALID_TOKEN, PERMISSION_DENIED, TokenHeaderError, key_from_header


class Permission(Enum):
    """Something a caller may be allowed to do."""

    READ_CUSTOMERS = "read customers"
    WRITE_EVENTS = "write events"


READ_CUSTOMERS = Permission.READ_CUSTOMERS
WRITE_EVENTS = Permission.WRITE_EVENTS

# Every role and what it may do: the only list of roles.
PERMISSIONS: Mapping[str, frozenset[Permission]] = MappingProxyType(
    {
        "admin": frozenset({READ_CUSTOMERS, WRITE_EVENTS}),
        "staff": frozenset({READ_CUSTOMERS}),
        "producer": frozenset({WRITE_EVENTS}),
    }
)
ROLES: tuple[str, ...] = tuple(PERMISSIONS)


def may(role: str, permission: Permission) -> bool:
    """Whether a key of this role may do what `permission` names."""
    return permission in PERMISSIONS.get(role, frozenset())


def hash_key(key: str) -> str:
    """A key as it is stored and looked up: its SHA-256 digest, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


class Grant(Protocol):
    """What a key cache knows of one key."""

    @property
    def key_hash(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def revoked(self) -> bool: ...


G = TypeVar("G", bound=Grant)


class AccessRefusedError(Exception):
    """The caller may not: status 401 or 403 with DRF's detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def presented_key(authorization: bytes | str | None) -> str:
    """The key a Token header presents; raises AccessRefusedError (401) otherwise."""
    try:
        return key_from_header(authorization)
    except TokenHeaderError as error:
        raise AccessRefusedError(401, error.detail) from None


def grant_for(key: str, grants: Mapping[str, G]) -> G | None:
    """The grant a cache holds for `key`, if any."""
    key_hash = hash_key(key)
    grant = grants.get(key_hash)
    # Keys are looked up by their SHA-256 digest, so timing says nothing about a stored
    # key; the final comparison is constant-time as well.
    if grant is None or not hmac.compare_digest(grant.key_hash, key_hash):
        return None
    return grant


def authorize(grant: G | None, permission: Permission | None = None) -> G:
    """The grant, if its key is live and its role has `permission` (any role if None).

    Raises AccessRefusedError: 401 for an unknown or revoked key, 403 for a role without
    the permission.
    """
    if grant is None or grant.revoked:
        raise AccessRefusedError(401, INVALID_TOKEN)
    if permission is not None and not may(grant.role, permission):
        raise AccessRefusedError(403, PERMISSION_DENIED)
    return grant


def authorize_header(
    authorization: bytes | str | None, grants: Mapping[str, G], permission: Permission | None
) -> G:
    """authorize() for the key a Token header presents, looked up in a cache in memory."""
    return authorize(grant_for(presented_key(authorization), grants), permission)
