"""The OpenAPI document and its pages, as users of every app read them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def document_api(app: FastAPI) -> None:
    """Everything the apps' OpenAPI document says beyond what the routes declare."""
    _document_validation_errors(app)


_ONE_LINE_DETAIL: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def _document_validation_errors(app: FastAPI) -> None:
    """Where a route documents 422 as `{"detail": str}`, allow FastAPI's list form too.

    Request validation errors keep FastAPI's standard body (the contract says so) while
    the edge refuses some values with a one-line detail, so a 422 can carry either form;
    the schema must say both or clients reject real answers.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" not in components:
            return schema
        listed = {"$ref": "#/components/schemas/HTTPValidationError"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                content = operation.get("responses", {}).get("422", {}).get("content", {})
                body = content.get("application/json")
                if body is None:
                    continue
                documented = body.get("schema")
                if documented == listed:  # the edge also refuses bad headers with one line
                    documented = _ONE_LINE_DETAIL
                body["schema"] = {"anyOf": [documented, listed]}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
