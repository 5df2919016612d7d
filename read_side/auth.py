"""Staff credentials: a Token header checked against the cached API keys, no I/O."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from edge.token_header import (
    INVALID_TOKEN,
    PERMISSION_DENIED,
    TokenHeaderError,
    key_from_header,
)
from read_side.projection_state import KeyGrant

READ_ROLES = frozenset({"staff", "admin"})


class AccessRefusedError(Exception):
    """The caller may not read: status 401 or 403 with DRF's detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def identify(authorization: bytes | str | None, grants: Mapping[str, KeyGrant]) -> KeyGrant:
    """The live key a Token header names; raises AccessRefusedError (401) otherwise."""
    try:
        key = key_from_header(authorization)
    except TokenHeaderError as error:
        raise AccessRefusedError(401, error.detail) from None
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    grant = grants.get(key_hash)
    # Keys are looked up by their SHA-256 digest, so timing says nothing about a stored
    # key; the final comparison is constant-time as well.
    if grant is None or not hmac.compare_digest(grant.key_hash, key_hash) or grant.revoked:
        raise AccessRefusedError(401, INVALID_TOKEN)
    return grant


def authorize_reader(authorization: bytes | str | None, grants: Mapping[str, KeyGrant]) -> str:
    """The caller's role if it may read customers; raises AccessRefusedError otherwise."""
    grant = identify(authorization, grants)
    if grant.role not in READ_ROLES:
        raise AccessRefusedError(403, PERMISSION_DENIED)
    return grant.role
