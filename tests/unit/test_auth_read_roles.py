"""Who may read customers: DRF's header rules, then the cached key's role and state."""

from __future__ import annotations

import hashlib

import pytest

from edge.token_header import (
    HAS_SPACES,
    INVALID_CHARACTERS,
    INVALID_TOKEN,
    NO_CREDENTIALS,
    NOT_PROVIDED,
    PERMISSION_DENIED,
)
from read_side.auth import AccessRefusedError, authorize_reader
from read_side.state_records import KeyGrant


def grant(key: str, role: str, revoked: bool = False) -> tuple[str, KeyGrant]:
    key_hash = hashlib.sha256(key.encode()).hexdigest()
    return key_hash, KeyGrant(key_hash, role, revoked)


GRANTS = dict(
    [
        grant("s", "staff"),
        grant("a", "admin"),
        grant("p", "producer"),
        grant("r", "staff", revoked=True),
    ]
)


@pytest.mark.parametrize(("header", "role"), [("Token s", "staff"), ("token a", "admin")])
def test_staff_and_admin_keys_may_read(header: str, role: str) -> None:
    assert authorize_reader(header, GRANTS) == role


@pytest.mark.parametrize(
    ("header", "status", "detail"),
    [
        (None, 401, NOT_PROVIDED),
        ("", 401, NOT_PROVIDED),
        ("Bearer s", 401, NOT_PROVIDED),
        ("Token", 401, NO_CREDENTIALS),
        ("Token s s", 401, HAS_SPACES),
        # DRF decodes the key as UTF-8 and looks it up: a control byte is just no key.
        ("Token s\x00", 401, INVALID_TOKEN),
        (b"Token \xff", 401, INVALID_CHARACTERS),
        ("Token\xa0s", 401, NOT_PROVIDED),
        ("Token unknown", 401, INVALID_TOKEN),
        ("Token r", 401, INVALID_TOKEN),
        ("Token p", 403, PERMISSION_DENIED),
    ],
)
def test_everyone_else_is_refused_with_drf_wording(
    header: bytes | str | None, status: int, detail: str
) -> None:
    with pytest.raises(AccessRefusedError) as refused:
        authorize_reader(header, GRANTS)
    assert (refused.value.status, refused.value.detail) == (status, detail)
