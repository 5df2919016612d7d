"""ApiKey: random keys, only hashes kept, known roles, revoke once."""

from __future__ import annotations

import hashlib

import pytest

from edge.access_policy import hash_key
from write_side.domain.api_key import ApiKey, ApiKeyRevokedError, UnknownRoleError, new_secret_key


def test_a_new_key_has_at_least_32_random_bytes_and_no_spaces() -> None:
    keys = {new_secret_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(key) >= 43 and " " not in key for key in keys)


def test_only_the_sha256_hash_of_a_key_is_stored() -> None:
    key = new_secret_key()
    api_key = ApiKey(name="shop", role="producer", key_hash=hash_key(key))
    (issued,) = api_key.collect_events()
    assert isinstance(issued, ApiKey.Issued)
    assert issued.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in repr(vars(issued))


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(UnknownRoleError):
        ApiKey(name="x", role="root", key_hash=hash_key("k"))


def test_a_key_can_be_revoked_once() -> None:
    api_key = ApiKey(name="shop", role="producer", key_hash=hash_key("k"))
    api_key.revoke()
    assert api_key.is_revoked
    with pytest.raises(ApiKeyRevokedError):
        api_key.revoke()
