"""Customer ids route as Django's `<int:pk>` does, bounded by us to 1..2^63-1.

The reference is Django's own URL resolver (tests/support/drf_reference). Where Django
routes a segment to a pk in 1..2^63-1 we take that pk; everywhere else, including Django's
pk 0 and pks beyond 64 bits, the segment names no customer.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ids import MAX_CUSTOMER_ID, parse_customer_id
from tests.support.drf_reference import django_routes


def expected_id(segment: str) -> int | None:
    """Django's pk for the segment, kept only inside our documented bound."""
    pk = django_routes(segment)
    return pk if pk is not None and 1 <= pk <= MAX_CUSTOMER_ID else None


SEGMENTS = [
    "1", "7", "42", "1000000", "01", "0001", "0" * 30 + "7", "0", "00", "0" * 30,
    "+1", "-1", "-0", " 1", "1 ", "\t1", "1\n", "1_000", "1,000", "1000.0", "1.", ".1", "1e3",
    "0x10", "0b1", "0o7", "\u0661", "\u0967", "\u00b2", "\uff11", "1\uff11", "\u2460",
    str(MAX_CUSTOMER_ID), str(MAX_CUSTOMER_ID - 1), "0" + str(MAX_CUSTOMER_ID),
    "0" * 100 + str(MAX_CUSTOMER_ID), str(MAX_CUSTOMER_ID + 1), str(2**64), "9" * 19,
    "1" * 20, "1" * 40, "9" * 5000, "0" * 5000 + "1", "", "abc", "1a", "a1", "1/2", "1/",
    "/1", "1?x=2", "1#2", "1%20", "%31", "1;2", "١٢", "1\x00", "\u200b1", "1\u00a0",
    # Around Python's default limit on the digits int() converts (4300), which Django's
    # converter meets: leading zeros count.
    "0" * 4299 + "1", "0" * 4300 + "1",
]  # fmt: skip


def segment_id(segment: str) -> str:
    text = ascii(segment)
    return text if len(text) <= 40 else f"{text[:24]}...({len(segment)} chars)"


def test_the_reference_routes_as_documented() -> None:
    assert django_routes("01") == 1
    assert django_routes("0") == 0
    assert django_routes("-1") is None


@pytest.mark.parametrize("segment", SEGMENTS, ids=segment_id)
def test_every_segment_routes_as_django_within_our_bound(segment: str) -> None:
    assert parse_customer_id(segment) == expected_id(segment)


segments = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"[0-9]{1,25}", fullmatch=True),
    st.from_regex(r"0*[1-9][0-9]{17,19}", fullmatch=True),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.lists(
        st.sampled_from(["0", "1", "9", " ", "+", "-", "_", ".", "e", "\u0663", "\uff11", "\u00b2"])
    ).map("".join),
    st.tuples(st.integers(0, 4400), st.from_regex(r"[0-9]{1,20}", fullmatch=True)).map(
        lambda padded: "0" * padded[0] + padded[1]
    ),
)


@settings(max_examples=300, deadline=None)
@given(segments)
def test_any_segment_routes_as_django_within_our_bound(segment: str) -> None:
    assert parse_customer_id(segment) == expected_id(segment)
