"""Deterministic aggregate ids, so a business key maps to exactly one event stream."""

from uuid import UUID, uuid5

_NAMESPACE = UUID("5b0c2f4e-6f0a-4c39-9a57-3f1f7b3e8c21")


def customer_stream_id(customer_id: int) -> UUID:
    return uuid5(_NAMESPACE, f"customer/{customer_id}")


def order_stream_id(order_id: str) -> UUID:
    return uuid5(_NAMESPACE, f"order/{order_id}")


def api_key_stream_id(name: str) -> UUID:
    return uuid5(_NAMESPACE, f"api-key/{name}")


def idempotency_stream_id(scope: str, key: str) -> UUID:
    return uuid5(_NAMESPACE, f"idempotency/{scope}/{key}")
