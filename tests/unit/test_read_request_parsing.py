"""Customer ids and ETags as the read endpoint understands them."""

from __future__ import annotations

import pytest

from edge.ids import parse_customer_id
from read_side.customer_reader import _etag_matches


# The rule changed deliberately, for parity with Django's `<int:pk>`: leading zeros are
# accepted ("01" is 1). "00" is still no id: Django reads 0, outside our 1..2^63-1 bound.
@pytest.mark.parametrize(
    ("segment", "expected"),
    [("1", 1), ("42", 42), (str(2**63 - 1), 2**63 - 1), ("1000000", 1000000), ("01", 1)],
)
def test_plain_positive_64_bit_integers_are_ids(segment: str, expected: int) -> None:
    assert parse_customer_id(segment) == expected


@pytest.mark.parametrize(
    "segment",
    ["", "0", "00", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "abc", "\u0661", "\u00b2",
     str(2**63), "9" * 19, "1" * 40, "1_000"],
)  # fmt: skip
def test_anything_else_is_not_an_id(segment: str) -> None:
    assert parse_customer_id(segment) is None


def test_an_etag_matches_itself_weakly_and_in_a_list() -> None:
    etag = '"abc"'
    assert _etag_matches('"abc"', etag)
    assert _etag_matches('W/"abc"', etag)
    assert _etag_matches('"x", "abc"', etag)
    assert _etag_matches("*", etag)


def test_a_different_etag_does_not_match() -> None:
    assert not _etag_matches('"abd"', '"abc"')
    assert not _etag_matches("abc", '"abc"')
    assert not _etag_matches("", '"abc"')
