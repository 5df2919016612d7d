"""ApiKey: a named credential with a role; only the key's SHA-256 hash is ever stored."""

from __future__ import annotations

import secrets
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from edge.access_policy import ROLES
from write_side.domain.ids import api_key_stream_id


def new_secret_key() -> str:
    """A fresh key: 32 random bytes, URL-safe text without spaces."""
    return secrets.token_urlsafe(32)


class ApiKey(Aggregate):
    """A key's name is unique for ever; revoking it is final."""

    TOPIC = "customers.ApiKey"

    class Created(Aggregate.Created):
        TOPIC = "customers.ApiKey.Created"

    class Issued(Created):
        TOPIC = "customers.ApiKey.Issued"
        class_version = 1
        name: str
        role: str
        key_hash: str

    class Revoked(Aggregate.Event):
        TOPIC = "customers.ApiKey.Revoked"
        class_version = 1
        key_hash: str

    @staticmethod
    def create_id(name: str, **_: Any) -> UUID:
        return api_key_stream_id(name)

    @event(Issued)
    def __init__(self, name: str, role: str, key_hash: str) -> None:
        if role not in ROLES:
            raise UnknownRoleError(role)
        self.name = name
        self.role = role
        self.key_hash = key_hash
        self.is_revoked = False

    def revoke(self) -> None:
        if self.is_revoked:
            raise ApiKeyRevokedError(self.name)
        self._revoked(self.key_hash)

    @event(Revoked)
    def _revoked(self, key_hash: str) -> None:
        self.is_revoked = True


class ApiKeyError(Exception):
    """Base class for API key invariant violations."""


class UnknownRoleError(ApiKeyError):
    """The role is not one the access policy knows."""


class ApiKeyRevokedError(ApiKeyError):
    """The key is revoked already."""
