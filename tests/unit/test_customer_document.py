"""The customer document's one table reaches every place that lists its fields."""

from __future__ import annotations

from contract.customer_document import (
    COMPLETION_FIELDS,
    PROFILE_FIELDS,
    RESPONSE_FIELDS,
    customer_document,
    is_profile_completed,
)
from projections.customer_record import CHUNK, MAX_CHUNKS
from projections.scripts import APPLY_CUSTOMER
from read_side.api import CustomerDocument
from write_side.domain.customer import PROFILE_FIELDS as DOMAIN_PROFILE_FIELDS
from write_side.schemas import ProfileFields


def test_the_response_model_lists_the_contract_fields_in_order() -> None:
    assert tuple(CustomerDocument.model_fields) == RESPONSE_FIELDS


def test_the_domain_and_the_request_schema_take_the_profile_fields_from_the_contract() -> None:
    assert DOMAIN_PROFILE_FIELDS is PROFILE_FIELDS
    assert tuple(ProfileFields.model_fields) == PROFILE_FIELDS


def test_the_projection_script_is_built_for_the_profile_width_and_the_record_chunks() -> None:
    widths = f"{len(PROFILE_FIELDS)}, {CHUNK}, {MAX_CHUNKS}"
    assert f"local profile_width, chunk, max_chunks = {widths}\n" in APPLY_CUSTOMER


def test_notes_alone_never_stand_between_a_profile_and_completion() -> None:
    assert "notes" not in COMPLETION_FIELDS
    complete = tuple(None if name == "notes" else "x" for name in PROFILE_FIELDS)
    assert is_profile_completed(complete)
    assert not is_profile_completed(
        tuple(None if name == "email" else "x" for name in PROFILE_FIELDS)
    )


def test_the_document_keeps_the_contract_order() -> None:
    document = customer_document(
        7,
        (None,) * len(PROFILE_FIELDS),
        active=True,
        date_joined="2024-01-01T00:00:00+00:00",
        last_login=None,
        total_orders=2,
        total_spent="3.50",
    )
    assert tuple(document) == RESPONSE_FIELDS
    assert document["id"] == 7
    assert document["is_profile_completed"] is False
