"""The OpenAPI document, as users of every app read it; its pages are edge/docs_pages.py.

The document FastAPI generates is completed with what the routes cannot declare: the
`Token` security scheme, the statuses the edge answers for every route (400, 405, 413,
431, 500, ...), integer bounds as exact integers, and headers documented with their type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_fields_from_routes
from pydantic import create_model
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError

from edge.docs_pages import serve_documentation_pages

SECURITY_SCHEME = "Token"
TOKEN_SCHEME: dict[str, Any] = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": (
        "Enter `Token <key>`: the word `Token`, one space, then the key "
        "(e.g. `Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b`)."
    ),
}

Document = dict[str, Any]
Transform = Callable[[Document], None]


def document_api(app: FastAPI) -> None:
    """Everything the apps' OpenAPI document says beyond what the routes declare."""
    serve_documentation_pages(app)
    _post_process(
        app,
        [
            lambda document: _restore_integer_bounds(document, _exact_integer_bounds(app)),
            _order_examples_as_properties,
            _document_validation_errors,
            _document_typed_headers,
            _document_security,
            _document_edge_statuses,
        ],
    )


def _post_process(app: FastAPI, transforms: list[Transform]) -> None:
    """Apply `transforms` once to the generated document, then serve the result."""
    build = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        for transform in transforms:
            transform(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


_ONE_LINE_DETAIL: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of the document."""
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            if method in _HTTP_METHODS:
                yield path, method, operation


def _document_validation_errors(document: Document) -> None:
    """Where a route documents 422 as `{"detail": str}`, allow FastAPI's list form too.

    Request validation errors keep FastAPI's standard body (the contract says so) while
    the edge refuses some values with a one-line detail, so a 422 can carry either form;
    the schema must say both or clients reject real answers.
    """
    components = document.get("components", {}).get("schemas", {})
    if "HTTPValidationError" not in components:
        return
    listed = {"$ref": "#/components/schemas/HTTPValidationError"}
    for _, _, operation in _operations(document):
        content = operation.get("responses", {}).get("422", {}).get("content", {})
        body = content.get("application/json")
        if body is None:
            continue
        documented = body.get("schema")
        if documented == listed:  # the edge also refuses bad headers with one line
            documented = _ONE_LINE_DETAIL
        body["schema"] = {"anyOf": [documented, listed]}


# Keywords whose value FastAPI's document model holds as a float, whatever the schema said.
_NUMERIC_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_EXACT_FLOAT_LIMIT = 2**53  # every integer up to this magnitude is exact as a float


def _exact_integer_bounds(app: FastAPI) -> dict[float, int]:
    """Each integer bound the routes' models declare, keyed by the float it degrades to."""
    exact: dict[float, int] = {}
    for field in get_fields_from_routes(app.routes):
        annotation: Any = field.field_info.annotation
        for mode in ("validation", "serialization"):
            try:
                holder = create_model("Bounds", value=(annotation, field.field_info))
                schema = holder.model_json_schema(mode=mode)
            except (PydanticSchemaGenerationError, PydanticUserError):
                continue
            for value in _bound_values(schema):
                exact[float(value)] = value
    return exact


def _bound_values(node: Any) -> Iterator[int]:
    """The integer values of every numeric bound in a JSON schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NUMERIC_BOUNDS and isinstance(value, int) and not isinstance(value, bool):
                yield value
            else:
                yield from _bound_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _bound_values(item)


def _restore_integer_bounds(node: Any, exact: dict[float, int]) -> None:
    """Write integral bounds as integers: `maximum: 9223372036854775807`, not 9.22e18.

    FastAPI's document model types these keywords as float, so 2**63-1 comes out as the
    nearest float, 2**63, which is a different (and wrong) bound.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _NUMERIC_BOUNDS and isinstance(value, float) and value.is_integer():
                if value in exact:
                    node[key] = exact[value]
                elif abs(value) <= _EXACT_FLOAT_LIMIT:
                    node[key] = int(value)
            else:
                _restore_integer_bounds(value, exact)
    elif isinstance(node, list):
        for item in node:
            _restore_integer_bounds(item, exact)


def _order_examples_as_properties(document: Document) -> None:
    """Give each schema's examples the fields in the schema's order, not alphabetical.

    Pydantic sorts every key of a JSON schema except those of `properties`, examples
    included; a request body sample that lists `birth_date` before `first_name` reads badly.
    """
    for schema in document.get("components", {}).get("schemas", {}).values():
        order = list(schema.get("properties", {}))
        examples = schema.get("examples")
        if not order or not isinstance(examples, list):
            continue
        schema["examples"] = [
            {name: example[name] for name in sorted(example, key=_position_in(order))}
            if isinstance(example, dict)
            else example
            for example in examples
        ]


def _position_in(order: list[str]) -> Callable[[str], int]:
    return lambda name: order.index(name) if name in order else len(order)


def _document_typed_headers(document: Document) -> None:
    """A parameter read as a string but documented with its own `type` has that type only.

    X-Min-Position is parsed by hand (an optional string) and declares
    `json_schema_extra={"type": "integer", ...}`; FastAPI keeps the string's `anyOf`
    beside it, which says "a string or null, and an integer" and no client can satisfy.
    """
    for _, _, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            if "type" in schema and "anyOf" in schema:
                del schema["anyOf"]


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _document_security(document: Document) -> None:
    """Declare the `Token` scheme and require it on every /api operation."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = TOKEN_SCHEME
    for path, _, operation in _operations(document):
        if _is_api(path):
            operation["security"] = [{SECURITY_SCHEME: []}]


_EDGE_STATUSES: dict[str, str] = {
    "400": "The body is not well-formed UTF-8 JSON, or Content-Length is malformed",
    "401": "Missing, malformed, unknown or revoked key",
    "403": "The key's role may not use this operation",
    "405": "The path does not serve this method; `Allow` lists those it serves",
    "409": "Conflicts with the current state, or an Idempotency-Key request is in flight",
    "413": "The request body is larger than the configured limit",
    "431": "Request header fields too large (too many, or too long)",
    "500": "Internal server error.",
    "503": "A store is unreachable; retry after `Retry-After` seconds",
}
_HEADERS: dict[str, dict[str, Any]] = {
    "405": {"Allow": {"description": "The methods the path serves", "schema": {"type": "string"}}},
}


def _applicable_statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """The statuses the edge and the framework can answer for this operation."""
    statuses = ["431", "500"]  # header limits and unexpected failures: any request
    if "requestBody" in operation:
        statuses += ["400", "413"]
    if _is_api(path):
        statuses += ["401", "403", "405", "503"]
        if method not in ("get", "head"):
            statuses.append("409")
    return statuses


def _detail_schema(document: Document, operation: dict[str, Any]) -> dict[str, Any]:
    """The `{"detail": str}` schema this operation's errors already use, else a shared one."""
    for response in operation.get("responses", {}).values():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        reference = schema.get("$ref", "")
        if reference.rsplit("/", 1)[-1] in ("ErrorBody", "ErrorDetail"):
            return {"$ref": reference}
    components = document.get("components", {}).get("schemas", {})
    for name in ("ErrorDetail", "ErrorBody"):
        if name in components:
            return {"$ref": f"#/components/schemas/{name}"}
    return dict(_ONE_LINE_DETAIL)


def _document_edge_statuses(document: Document) -> None:
    """Add every status a route can answer that its own declaration leaves out."""
    for path, method, operation in _operations(document):
        responses = operation.setdefault("responses", {})
        for status in _applicable_statuses(path, method, operation):
            if status in responses:
                continue
            response: dict[str, Any] = {
                "description": _EDGE_STATUSES[status],
                "content": {"application/json": {"schema": _detail_schema(document, operation)}},
            }
            if status in _HEADERS:
                response["headers"] = {**_HEADERS[status]}
            responses[status] = response
        operation["responses"] = dict(sorted(responses.items()))
