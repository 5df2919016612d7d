"""Money as Decimal with exactly two places; never a float."""

import re
from decimal import Decimal

MAX_AMOUNT = Decimal("1000000000000")
CENT = Decimal("0.01")

# Plain decimal text only: no exponent, no underscores, no "NaN"/"Infinity".
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


class InvalidAmountError(ValueError):
    """The value is not a positive amount with at most two decimal places."""


def parse_amount(value: object) -> Decimal:
    """A positive amount of at most two decimal places and at most MAX_AMOUNT, as Decimal.

    Accepts decimal text ("12.34"), an int, or a Decimal read exactly from JSON text.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidAmountError('must be a decimal string such as "12.34"')
    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            raise InvalidAmountError('is not a decimal number such as "12.34"')
        amount = Decimal(text)
    else:
        amount = Decimal(value)
    if not amount.is_finite():
        raise InvalidAmountError("must be a finite number")
    if amount <= 0:
        raise InvalidAmountError("must be greater than 0")
    # Compare before quantizing: quantizing a huge value would overflow the context.
    if amount > MAX_AMOUNT:
        raise InvalidAmountError(f"must not exceed {MAX_AMOUNT}")
    if amount != amount.quantize(CENT):
        raise InvalidAmountError("must have at most 2 decimal places")
    return amount.quantize(CENT)


def to_minor_units(amount: Decimal) -> int:
    """Exact integer cents of a two-place amount."""
    return int(amount.quantize(CENT).scaleb(2))
