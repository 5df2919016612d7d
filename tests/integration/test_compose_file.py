"""docker-compose.yml is a valid Compose file that wires the stack the way operators expect."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "support" / "compose_spec" / "compose-spec.json"
APP_SERVICES = ("write-api", "projector", "read-api")
CONTRACT_VARIABLES = {"EVENT_STORE_URL", "REDIS_URL", "DATA_DIR", "HOST", "PORT"}


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_validates_against_the_compose_specification_schema() -> None:
    assert schema_errors(load_compose()) == []


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: d["services"]["read-api"].update(restart_policy="always"), "restart_policy"),
        (lambda d: d["services"]["redis"].update(healthcheck={"test": 5}), "healthcheck"),
        (
            lambda d: d["services"]["projector"].update(
                depends_on={"redis": {"condition": "when_ready"}}
            ),
            "depends_on",
        ),
    ],
    ids=["unknown key", "malformed healthcheck", "unknown depends_on condition"],
)
def test_the_schema_check_rejects_a_broken_compose_file(break_it: Any, expected: str) -> None:
    broken = copy.deepcopy(load_compose())
    break_it(broken)
    assert any(expected in error for error in schema_errors(broken))


def test_stores_have_healthchecks_volumes_and_redis_keeps_an_append_only_file() -> None:
    services = load_compose()["services"]
    postgres, redis = services["postgres"], services["redis"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert set(load_compose()["volumes"]) >= {"postgres-data", "redis-data"}


def test_every_role_runs_from_one_image_and_starts_after_its_stores_are_healthy() -> None:
    services = load_compose()["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1
    assert all(services[name]["build"] == "." for name in APP_SERVICES)
    for name, service in services.items():
        assert service["restart"] in ("always", "unless-stopped", "on-failure"), name
    for name in APP_SERVICES:
        depends_on = services[name]["depends_on"]
        assert depends_on, name
        for store, rule in depends_on.items():
            assert store in ("postgres", "redis")
            assert rule == {"condition": "service_healthy"}, name


def test_roles_are_configured_only_through_the_contract_variables() -> None:
    services = load_compose()["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert isinstance(environment, dict)
        assert set(environment) <= CONTRACT_VARIABLES, name
        assert environment["EVENT_STORE_URL"].startswith("postgresql://"), name
        if name != "write-api":
            assert environment["REDIS_URL"].startswith("redis://redis:"), name
        assert "env_file" not in services[name], name
