"""Schemathesis against /openapi.json of the all-in-one app: no 5xx, answers as documented."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.all_in_one import Running, all_in_one
from tests.support import local_http

EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def running(sqlite_url: str, redis_url: str, redis_prefix: str) -> Iterator[Running]:
    with all_in_one(sqlite_url, redis_url, redis_prefix) as running:
        yield running


def not_a_server_error(ctx: object, response: schemathesis.Response, case: object) -> bool:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    return True


def test_every_documented_operation_answers_as_documented_and_never_5xx(
    running: Running,
) -> None:
    headers = {"Authorization": f"Token {running.admin_key}"}
    # A few customers exist, so reads and writes also take their success paths.
    for number in range(1, 4):
        local_http.post(
            f"{running.base_url}/api/customers",
            json={"id": number, "first_name": f"Customer {number}"},
            headers=headers,
        ).raise_for_status()
    recorder = running.container.write_service.recorder

    def store_head() -> int:
        return recorder.max_notification_id() or 0

    schema = schemathesis.openapi.from_url(f"{running.base_url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the schema has an invalid operation: {result}"
        operations.append(result.ok())
    labels = {operation.label for operation in operations}
    assert "GET /api/customers/{customer_id}" in labels
    assert "POST /api/customers" in labels

    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), existing_id=st.sampled_from([1, 2, 3, None]))
        def answers_as_documented(case: schemathesis.Case[Any], existing_id: int | None) -> None:
            if existing_id is not None and "customer_id" in (case.path_parameters or {}):
                case.path_parameters["customer_id"] = existing_id
            # A position past the store's head is a documented 503 after the whole wait
            # (tested in the contract tests); here it would only spend two seconds a case.
            for name, wanted in list((case.headers or {}).items()):
                if name.lower() != "x-min-position" or not isinstance(wanted, str):
                    continue
                if wanted.isdigit() and int(wanted) > store_head():
                    case.headers = {**(case.headers or {}), name: str(store_head())}
            case.call_and_validate(
                base_url=running.base_url, headers=headers, checks=checks, timeout=10
            )

        answers_as_documented()
