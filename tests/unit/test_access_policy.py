"""The access policy is the one list of roles: the aggregate, the CLI and the checks follow it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edge.access_policy import PERMISSIONS, ROLES, Permission, hash_key, may
from runtime.cli import app
from write_side.domain.api_key import ApiKey


@pytest.mark.parametrize("role", ROLES)
def test_every_role_of_the_policy_can_be_issued(role: str) -> None:
    assert ApiKey(name="k", role=role, key_hash=hash_key("k")).role == role


def test_the_cli_offers_exactly_the_policys_roles() -> None:
    result = CliRunner().invoke(app, ["tokens", "create", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert all(role in result.stdout for role in ROLES)


@pytest.mark.parametrize("permission", Permission)
def test_a_role_may_only_what_the_table_grants(permission: Permission) -> None:
    for role, granted in PERMISSIONS.items():
        assert may(role, permission) == (permission in granted)
    assert not may("root", permission)
