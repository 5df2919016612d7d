"""GET /api/customers/{id}: the documented route and its response model.

The fast path (read_side/fast_path.py) answers this route in production; the route here
calls the same `CustomerReader.reply`, documents the endpoint in OpenAPI, and serves it
wherever the fast path is not mounted.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, create_model

from contract.customer_document import PROFILE, ProfileField
from edge.ids import CUSTOMER_ID_PARAMETER
from read_side.customer_reader import CustomerReader
from read_side.fast_path import ROUTE

TEXT_OR_NULL: Any = str | None  # a type, as create_model takes it


def _served(field: ProfileField) -> Any:
    if field.description is None and field.pattern is None:
        return (TEXT_OR_NULL, ...)
    return (TEXT_OR_NULL, Field(description=field.description, pattern=field.pattern))


# The 200 body's schema, derived from the contract's field table, in the document's order.
CustomerDocument = create_model(
    "CustomerDocument",
    __doc__="The 200 body, fields in this order.",
    id=(int, ...),
    **{field.name: _served(field) for field in PROFILE},
    is_active=(bool, ...),
    is_profile_completed=(bool, ...),
    date_joined=(str, Field(description="ISO 8601 with timezone")),
    last_login=(TEXT_OR_NULL, Field(description="ISO 8601 with timezone")),
    total_orders=(int, ...),
    total_spent=(
        str,
        Field(description="Exact decimal with two places", pattern=r"^-?\d+\.\d{2}$"),
    ),
)


class ErrorDetail(BaseModel):
    detail: str


def _documented(description: str, **headers: str) -> dict[str, Any]:
    documented: dict[str, Any] = {"model": ErrorDetail, "description": description}
    if headers:
        documented["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return documented


READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The customer",
        "headers": {
            "X-Projection-Position": {
                "description": "Event store position the read model had applied",
                "schema": {"type": "integer"},
            },
            "ETag": {"description": "Entity tag of the body", "schema": {"type": "string"}},
        },
    },
    304: {"description": "Not modified (If-None-Match matched the ETag)"},
    401: _documented(
        "Missing, malformed, unknown or revoked key",
        **{"WWW-Authenticate": "Always Token"},
    ),
    403: _documented("The key's role is not staff or admin"),
    404: _documented("No such customer, or an id that is not a positive 64-bit integer"),
    422: _documented("X-Min-Position is not a non-negative integer"),
    500: _documented("Internal server error."),
    503: _documented(
        "Read model unreachable, or X-Min-Position not reached in time",
        **{"Retry-After": "Seconds to wait before retrying"},
    ),
}

router = APIRouter(tags=["staff"])


@router.get(
    ROUTE,
    operation_id="get_customer",
    response_model=CustomerDocument,
    summary="Read one customer with running totals",
    responses=READ_RESPONSES,
)
async def get_customer(
    request: Request,
    customer_id: Annotated[str, Path(**CUSTOMER_ID_PARAMETER)],
    authorization: Annotated[
        str | None, Header(description="`Token <key>` of a staff or admin key")
    ] = None,
    x_min_position: Annotated[
        str | None,
        Header(
            description="Wait (bounded) until the read model applied this write position",
            json_schema_extra={"type": "integer", "minimum": 0},
        ),
    ] = None,
    if_none_match: Annotated[
        str | None, Header(description="ETag of a cached copy; 304 when unchanged")
    ] = None,
) -> Response:
    reader: CustomerReader = request.app.state.customer_reader
    reply = await reader.reply(customer_id, authorization, x_min_position, if_none_match)
    response = Response(reply.body, status_code=reply.status)
    response.raw_headers[:] = reply.headers  # the reply's own Content-Length included
    return response


router.add_api_route(
    ROUTE,
    get_customer,
    methods=["HEAD"],
    operation_id="head_customer",
    summary="The headers of a customer read, without its body",
    response_class=Response,
    responses={**READ_RESPONSES, 200: {"description": "As GET, without the body"}},
)
