"""The OpenAPI document every app serves, and its pages, as the people reading them need."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from edge.ids import MAX_CUSTOMER_ID
from runtime.container import Container
from runtime.http import ServiceApp, build_app
from runtime.settings import Settings
from tests.support import local_http
from tests.support.live_app import serving
from write_side import schemas

# The read side connects to Redis when the app starts (its lifespan); these tests only
# read the document and the pages, and never start a read side.
NEVER_CONNECTED_REDIS = "redis://127.0.0.1:1/0"

FACTORIES: dict[str, Callable[[Container], ServiceApp]] = {
    "all-in-one": lambda container: build_app(
        container, write=True, read=True, redis_url=NEVER_CONNECTED_REDIS
    ),
    "read": lambda container: build_app(
        container, write=False, read=True, redis_url=NEVER_CONNECTED_REDIS
    ),
    "write": lambda container: build_app(container, write=True, read=False),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Container]:
    settings = Settings(EVENT_STORE_URL=f"sqlite:///{tmp_path / 'events.sqlite'}")
    container = Container(settings)
    yield container
    container.close()


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceApp]]:
    """Each app built once for the module (an app and its document take 0.2-0.5 s), on a
    store nothing writes to: the tests that take them only read the document and pages."""
    store = tmp_path_factory.mktemp("openapi") / "events.sqlite"
    container = Container(Settings(EVENT_STORE_URL=f"sqlite:///{store}"))
    try:
        yield {name: factory(container) for name, factory in FACTORIES.items()}
    finally:
        container.close()


@pytest.fixture(params=sorted(FACTORIES))
def client(request: pytest.FixtureRequest, apps: dict[str, ServiceApp]) -> TestClient:
    """Each app, in process, its lifespan never run."""
    return TestClient(apps[request.param])


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


@pytest.fixture
def all_in_one(apps: dict[str, ServiceApp]) -> dict[str, Any]:
    served: dict[str, Any] = TestClient(apps["all-in-one"]).get("/openapi.json").json()
    return served


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if reference is None:
        return schema
    resolved: dict[str, Any] = document["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    return resolved


def body_model(document: dict[str, Any], operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The component name and schema of an operation's JSON request body."""
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    references = [option["$ref"] for option in schema.get("anyOf", [schema]) if "$ref" in option]
    assert len(references) == 1, schema
    name = references[0].rsplit("/", 1)[-1]
    return name, document["components"]["schemas"][name]


def examples_by_operation(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`METHOD path` -> the first documented example of its request body."""
    found = {}
    for path, method, operation in operations(document):
        if "requestBody" in operation:
            name, schema = body_model(document, operation)
            assert schema.get("examples"), f"{name} documents no example"
            found[f"{method.upper()} {path}"] = schema["examples"][0]
    return found


# Security


def test_the_token_scheme_is_declared_and_required_on_every_api_operation(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"]["Token"]
    assert scheme["type"] == "apiKey"
    assert scheme["in"] == "header"
    assert scheme["name"] == "Authorization"
    assert "`Token <key>`" in scheme["description"]
    for path, method, operation in operations(document):
        if path.startswith("/api/"):
            assert operation.get("security") == [{"Token": []}], f"{method} {path}"
        else:
            assert "security" not in operation, f"{method} {path}"
    assert "security" not in document  # no global requirement: /healthz and friends are open


# Examples


def test_every_request_body_documents_an_example_its_own_model_accepts(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        if "requestBody" not in operation:
            continue
        name, schema = body_model(document, operation)
        model = getattr(schemas, name)
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        assert schema.get("examples"), f"{method} {path}: no example"
        for example in schema["examples"]:
            model.model_validate_json(json.dumps(example))  # raises if the model refuses it


def test_the_examples_are_plausible(all_in_one: dict[str, Any]) -> None:
    examples = examples_by_operation(all_in_one)
    assert set(examples) == {
        "POST /api/customers",
        "PATCH /api/customers/{customer_id}",
        "POST /api/customers/{customer_id}/logins",
        "POST /api/orders",
        "POST /api/orders/{order_id}/refunds",
    }
    for example in examples.values():
        if "amount" in example:
            assert isinstance(example["amount"], str)
            assert re.fullmatch(r"[0-9]+\.[0-9]{2}", example["amount"])
            assert float(example["amount"]) > 0
    registered = examples["POST /api/customers"]
    assert registered["birth_date"] < "2010-01-01"
    assert "@" in registered["email"]
    # Read back by the fields' own order, as a person fills the form in, not alphabetically.
    order = list(all_in_one["components"]["schemas"]["RegisterCustomer"]["properties"])
    assert list(registered) == [name for name in order if name in registered]


def test_the_running_api_accepts_every_documented_example(
    all_in_one: dict[str, Any], container: Container
) -> None:
    examples = examples_by_operation(all_in_one)
    key = container.write_service.issue_api_key("docs-examples", "producer").key
    headers = {"Authorization": f"Token {key}"}
    with serving(build_app(container, write=True, read=False)) as base_url:

        def post(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = local_http.request(
                method, base_url + path, json=body, headers=headers, timeout=10
            )
            assert response.is_success, f"{method} {path} {body}: {response.text}"
            answer: dict[str, Any] = response.json()
            return answer

        registered = post("POST", "/api/customers", examples["POST /api/customers"])
        order = examples["POST /api/orders"]
        # The order example names the first customer a fresh store allocates.
        assert registered["id"] == order["customer_id"]
        customer = f"/api/customers/{registered['id']}"
        post("PATCH", customer, examples["PATCH /api/customers/{customer_id}"])
        post("POST", f"{customer}/logins", examples["POST /api/customers/{customer_id}/logins"])
        placed = post("POST", "/api/orders", order)
        refund = examples["POST /api/orders/{order_id}/refunds"]
        post("POST", f"/api/orders/{placed['order_id']}/refunds", refund)


# Types


def test_no_bound_is_rendered_as_a_float(client: TestClient) -> None:
    text = client.get("/openapi.json").text
    keys = "|".join(BOUNDS)
    bounds = re.findall(rf'"(?:{keys})":\s*(-?[0-9][0-9.eE+-]*)', text)
    assert bounds
    assert [bound for bound in bounds if not re.fullmatch(r"-?[0-9]+", bound)] == []
    assert not re.search(r"[0-9]\.[0-9]+[eE]\+?[0-9]", text)


def test_customer_ids_are_bounded_by_the_exact_64_bit_maximum(
    all_in_one: dict[str, Any], client: TestClient
) -> None:
    for name in ("PlaceOrder", "RegisterCustomer"):
        schema = all_in_one["components"]["schemas"][name]["properties"]
        field = schema.get("customer_id") or schema["id"]["anyOf"][0]
        assert field["type"] == "integer"
        assert field["maximum"] == MAX_CUSTOMER_ID
        assert type(field["maximum"]) is int
    assert f'"maximum":{MAX_CUSTOMER_ID}' in client.get("/openapi.json").text.replace(" ", "")


def test_x_min_position_is_documented_as_an_integer(all_in_one: dict[str, Any]) -> None:
    operation = all_in_one["paths"]["/api/customers/{customer_id}"]["get"]
    (parameter,) = (p for p in operation["parameters"] if p["name"].lower() == "x-min-position")
    assert parameter["in"] == "header"
    schema = parameter["schema"]
    assert schema["type"] == "integer"
    assert schema["minimum"] == 0
    assert "anyOf" not in schema


# Statuses


def expected_statuses(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    statuses = {"431", "500"}
    if "requestBody" in operation:
        statuses |= {"400", "413", "422"}
    if path.startswith("/api/"):
        statuses |= {"401", "403", "405", "503"}
        if method not in ("get", "head"):
            statuses.add("409")
        if "{" in path or method in ("get", "head"):
            statuses.add("404")
    return statuses


def test_every_status_a_route_can_answer_is_documented_with_its_body(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        responses = operation["responses"]
        missing = expected_statuses(path, method, operation) - set(responses)
        assert not missing, f"{method} {path} does not document {sorted(missing)}"
        for status, response in responses.items():
            if not status.startswith(("4", "5")) or (path, status) == ("/readyz", "503"):
                continue  # a 503 from /readyz is its readiness report, lag and all
            schema = response["content"]["application/json"]["schema"]
            if status == "422" and "anyOf" in schema:  # FastAPI's list form, or one line
                listed, schema = schema["anyOf"][1], schema["anyOf"][0]
                assert listed == {"$ref": "#/components/schemas/HTTPValidationError"}
            detail = resolve(document, schema)
            assert detail["properties"]["detail"]["type"] == "string", f"{method} {path} {status}"
            assert detail["required"] == ["detail"]
        if "405" in responses:
            assert "Allow" in responses["405"]["headers"]


def test_the_write_operations_document_conflicts_and_body_errors(
    all_in_one: dict[str, Any],
) -> None:
    orders = set(all_in_one["paths"]["/api/orders"]["post"]["responses"])
    assert {"201", "400", "401", "403", "404", "405", "409", "413", "422"} <= orders
    assert {"431", "500", "503"} <= orders
    cancel = set(all_in_one["paths"]["/api/orders/{order_id}/cancel"]["post"]["responses"])
    assert "409" in cancel
    assert not {"400", "413"} & cancel  # no body, so no malformed or oversized body
    health = set(all_in_one["paths"]["/healthz"]["get"]["responses"])
    assert health == {"200", "431", "500"}


# Pages


def test_the_pages_load_every_asset_from_this_service(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "/openapi.json" in html
        urls = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert urls, page
        assert [url for url in urls if not url.startswith("/docs/assets/")] == []
        assert "cdn" not in html.lower()
        assert "fonts.googleapis" not in html
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
    kinds = {
        "swagger-ui-bundle.js": "text/javascript",
        "redoc.standalone.js": "text/javascript",
        "swagger-ui.css": "text/css",
    }
    for name, kind in kinds.items():
        assert client.get(f"/docs/assets/{name}").headers["content-type"].startswith(kind), name


def test_swagger_ui_keeps_the_key_in_the_page_only(client: TestClient) -> None:
    html = client.get("/docs").text
    assert '"persistAuthorization": false' in html
    assert "requestInterceptor" not in html  # the Authorization header is sent as entered
    assert "oauth2RedirectUrl" not in html  # Token keys, no OAuth2 flow to return from


def test_the_pages_stay_out_of_the_document(document: dict[str, Any]) -> None:
    assert not [path for path in document["paths"] if path.startswith(("/docs", "/redoc"))]
