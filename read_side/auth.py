"""Staff credentials: who may read customers, decided on the cached keys without I/O."""

from __future__ import annotations

from collections.abc import Mapping

from edge.access_policy import READ_CUSTOMERS, AccessRefusedError, authorize_header
from read_side.state_records import KeyGrant

__all__ = ["AccessRefusedError", "authorize_reader"]


def authorize_reader(authorization: bytes | str | None, grants: Mapping[str, KeyGrant]) -> str:
    """The caller's role if it may read customers; raises AccessRefusedError otherwise."""
    return authorize_header(authorization, grants, READ_CUSTOMERS).role
