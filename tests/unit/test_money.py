"""Money parsing: exact Decimal, two places at most, positive, bounded; never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from write_side.domain.money import InvalidAmountError, parse_amount, to_minor_units


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.34", "12.34"),
        (" 12.3 ", "12.30"),
        ("7", "7.00"),
        (7, "7.00"),
        (Decimal("0.1"), "0.10"),
        (Decimal("1E-1"), "0.10"),
        ("0.01", "0.01"),
        ("1.000", "1.00"),
        ("1000000000000", "1000000000000.00"),
        ("1000000000000.00", "1000000000000.00"),
    ],
)
def test_a_valid_amount_becomes_an_exact_two_place_decimal(value: object, expected: str) -> None:
    amount = parse_amount(value)
    assert str(amount) == expected


@pytest.mark.parametrize(
    "value",
    [
        0,
        "0",
        "0.00",
        "-1",
        "0.001",
        "1.005",
        "1000000000000.01",
        Decimal("1E+400"),
        "123456789012345678901234567890.123",
        "1e2",
        "1_000",
        "NaN",
        "Infinity",
        Decimal("NaN"),
        "",
        "12,34",
        0.1,
        True,
        None,
        [1],
    ],
)
def test_anything_else_is_refused(value: object) -> None:
    with pytest.raises(InvalidAmountError):
        parse_amount(value)


def test_minor_units_are_exact_integer_cents() -> None:
    assert to_minor_units(Decimal("1234.50")) == 123450
    assert to_minor_units(Decimal("0.10")) + to_minor_units(Decimal("0.20")) == 30
    assert to_minor_units(Decimal("1000000000000.00")) == 100000000000000
