"""Producers' HTTP API; domain and application errors become HTTP errors here only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.exceptions import RequestValidationError

from edge.errors import ApiError
from edge.exact_json import BodyError, ExactJSONRoute, noted_body_error
from edge.ids import CUSTOMER_ID_PARAMETER, parse_customer_id
from write_side.auth import RETRY_AFTER, STORE_UNAVAILABLE, Producer, Service
from write_side.command_runner import Written
from write_side.domain.customer import CustomerAlreadyActiveError, CustomerInactiveError
from write_side.domain.order import OrderCancelledError, RefundExceedsAmountError
from write_side.errors import (
    ConcurrentUpdateError,
    CustomerAlreadyRegisteredError,
    CustomerNotFoundError,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    OrderIdTakenError,
    OrderNotFoundError,
)
from write_side.idempotency import IdempotencyClaim, fingerprint
from write_side.schemas import (
    CustomerWritten,
    ErrorBody,
    OrderPlaced,
    PlaceOrder,
    Positioned,
    ProfileFields,
    RecordLogin,
    RefundOrder,
    RegisterCustomer,
)

CUSTOMER_NOT_FOUND = "Customer not found."


async def path_customer_id(
    _: Producer,
    customer_id: Annotated[str, Path(**CUSTOMER_ID_PARAMETER)],
) -> int:
    """The customer id in the URL, by Django's `<int:pk>` rule; 404 after authentication."""
    parsed = parse_customer_id(customer_id)
    if parsed is None:
        raise ApiError(404, CUSTOMER_NOT_FOUND)
    return parsed


PathCustomerId = Annotated[int, Depends(path_customer_id)]
PathOrderId = Annotated[str, Path(min_length=1, max_length=100, description="Order id")]

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing, malformed, unknown or revoked key"},
    403: {"model": ErrorBody, "description": "The key's role is not producer or admin"},
    503: {"model": ErrorBody, "description": "The event store is unreachable; retry later"},
}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        404: "No such customer or order",
        409: "Conflicts with the current state, or an Idempotency-Key request is in flight",
        422: "Invalid body, or an Idempotency-Key reused with a different body",
    }
    extra: dict[int | str, dict[str, Any]] = {
        s: {"model": ErrorBody, "description": descriptions[s]} for s in statuses
    }
    return {**_AUTH_ERRORS, **extra}


async def idempotency_claim(
    request: Request,
    principal: Producer,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="Retries with the same key and body return the first response",
        ),
    ] = None,
) -> IdempotencyClaim | None:
    if idempotency_key is None:
        return None
    if not idempotency_key.strip():
        raise ApiError(422, "Idempotency-Key must not be blank.")
    digest = fingerprint(request.method, request.url.path, await request.body())
    return IdempotencyClaim(principal.name, idempotency_key, digest)


Claim = Annotated[IdempotencyClaim | None, Depends(idempotency_claim)]

_REFUSALS: dict[type[Exception], tuple[int, Callable[[Exception], str]]] = {
    CustomerNotFoundError: (404, lambda e: CUSTOMER_NOT_FOUND),
    OrderNotFoundError: (404, lambda e: "Order not found."),
    CustomerAlreadyRegisteredError: (409, lambda e: f"Customer {e} is already registered."),
    CustomerAlreadyActiveError: (409, lambda e: "Customer is already active."),
    OrderIdTakenError: (409, lambda e: f"Order {e} already exists."),
    OrderCancelledError: (409, lambda e: "Order is cancelled."),
    RefundExceedsAmountError: (409, lambda e: f"Refund refused: {e}."),
    IdempotencyKeyInFlightError: (
        409,
        lambda e: "A request with this Idempotency-Key is still in progress.",
    ),
    IdempotencyKeyReusedError: (
        422,
        lambda e: "Idempotency-Key was already used with a different request.",
    ),
    ConcurrentUpdateError: (409, lambda e: "Too many concurrent updates; retry."),
}


ORDER_FROM_INACTIVE = "Customer is deactivated and cannot place orders."


def as_http_refusal(
    error: Exception, inactive_detail: str = "Customer is deactivated."
) -> ApiError | None:
    """The HTTP refusal for a domain or application refusal or a store outage, else None."""
    if isinstance(error, CustomerInactiveError):
        return ApiError(409, inactive_detail)
    if isinstance(error, OperationalError | InterfaceError):
        return ApiError(503, STORE_UNAVAILABLE, RETRY_AFTER)
    refusal = _REFUSALS.get(type(error))
    if refusal is None:
        return None
    status, detail = refusal
    return ApiError(status, detail(error))


@contextmanager
def refusals_as_http(inactive_detail: str = "Customer is deactivated.") -> Iterator[None]:
    """Domain and application refusals, and store outages, as ApiError (404/409/422/503)."""
    try:
        yield
    except Exception as error:
        refusal = as_http_refusal(error, inactive_detail)
        if refusal is None:
            raise
        raise refusal from None


def _positioned(written: Written, **fields: Any) -> dict[str, Any]:
    return {**written.result, **fields, "position": written.position}


def body_refusal(error: BodyError) -> ApiError | RequestValidationError:
    """The answer to a refused body: 400 if it is no JSON, a 422 naming where otherwise."""
    if error.status != 422:
        return ApiError(error.status, error.detail)
    where = ("body", *error.loc)
    return RequestValidationError([{"type": "value_error", "loc": where, "msg": error.detail}])


async def well_formed_body(request: Request, _: Producer) -> None:
    """A body that is not JSON (400) or holds an impossible value (422), once authenticated."""
    error = noted_body_error(request)
    if error is not None:
        raise body_refusal(error)


router = APIRouter(
    prefix="/api",
    tags=["producers"],
    route_class=ExactJSONRoute,
    dependencies=[Depends(well_formed_body)],
)


@router.post(
    "/customers",
    status_code=201,
    response_model=CustomerWritten,
    responses=_errors(409, 422),
)
def register_customer(body: RegisterCustomer, service: Service, claim: Claim) -> dict[str, Any]:
    """Register a customer; without `id` the next free id is allocated."""
    profile = body.profile(only_set=False)
    with refusals_as_http():
        return _positioned(service.register_customer(body.id, profile, claim))


@router.patch(
    "/customers/{customer_id}",
    response_model=CustomerWritten,
    responses=_errors(404, 409, 422),
)
def update_customer(
    customer_id: PathCustomerId, body: ProfileFields, service: Service, claim: Claim
) -> dict[str, Any]:
    """Change any subset of a customer's profile; `null` clears a field."""
    with refusals_as_http():
        return _positioned(service.update_profile(customer_id, body.profile(only_set=True), claim))


@router.post(
    "/customers/{customer_id}/logins",
    response_model=Positioned,
    responses=_errors(404, 409, 422),
)
def record_login(
    customer_id: PathCustomerId,
    service: Service,
    claim: Claim,
    body: RecordLogin | None = None,
) -> dict[str, Any]:
    """Record a login at `at` (default: now)."""
    with refusals_as_http():
        written = service.record_login(customer_id, body.at if body else None, claim)
        return {"position": written.position}


@router.post(
    "/customers/{customer_id}/deactivate",
    response_model=Positioned,
    responses=_errors(404, 409),
)
def deactivate_customer(
    customer_id: PathCustomerId, service: Service, claim: Claim
) -> dict[str, Any]:
    """Deactivate a customer; a deactivated customer cannot place orders."""
    with refusals_as_http(inactive_detail="Customer is already deactivated."):
        return {"position": service.deactivate_customer(customer_id, claim).position}


@router.post(
    "/customers/{customer_id}/reactivate",
    response_model=Positioned,
    responses=_errors(404, 409),
)
def reactivate_customer(
    customer_id: PathCustomerId, service: Service, claim: Claim
) -> dict[str, Any]:
    """Reactivate a deactivated customer."""
    with refusals_as_http():
        return {"position": service.reactivate_customer(customer_id, claim).position}


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderPlaced,
    responses=_errors(404, 409, 422),
)
def place_order(body: PlaceOrder, service: Service, claim: Claim) -> dict[str, Any]:
    """Place an order for an active customer; `amount` is an exact decimal."""
    with refusals_as_http(inactive_detail=ORDER_FROM_INACTIVE):
        written = service.place_order(
            body.customer_id, body.amount, body.order_id, body.placed_at, claim
        )
        return _positioned(written)


@router.post(
    "/orders/{order_id}/cancel",
    response_model=Positioned,
    responses=_errors(404, 409),
)
def cancel_order(order_id: PathOrderId, service: Service, claim: Claim) -> dict[str, Any]:
    """Cancel an order once; it then no longer counts in the customer's totals."""
    with refusals_as_http():
        return {"position": service.cancel_order(order_id, claim).position}


@router.post(
    "/orders/{order_id}/refunds",
    response_model=Positioned,
    responses=_errors(404, 409, 422),
)
def refund_order(
    order_id: PathOrderId, body: RefundOrder, service: Service, claim: Claim
) -> dict[str, Any]:
    """Refund part of an order; refunds never exceed its amount."""
    with refusals_as_http():
        return {"position": service.refund_order(order_id, body.amount, claim).position}
