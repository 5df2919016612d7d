"""Money as Decimal with exactly two places; never a float."""

from decimal import Decimal, InvalidOperation

MAX_AMOUNT = Decimal("1000000000000")
CENT = Decimal("0.01")


class InvalidAmountError(ValueError):
    """The text is not a positive amount with at most two decimal places."""


def parse_amount(value: object) -> Decimal:
    """Parse a positive amount of at most two decimal places and at most MAX_AMOUNT."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidAmountError('must be a decimal string such as "12.34"')
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidAmountError("is not a decimal number") from None
    if not amount.is_finite():
        raise InvalidAmountError("must be a finite number")
    if amount <= 0:
        raise InvalidAmountError("must be greater than 0")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(CENT):
        raise InvalidAmountError("must have at most 2 decimal places")
    if amount > MAX_AMOUNT:
        raise InvalidAmountError(f"must not exceed {MAX_AMOUNT}")
    return amount.quantize(CENT)


def to_minor_units(amount: Decimal) -> int:
    """Exact integer cents of a two-place amount."""
    return int(amount.quantize(CENT).scaleb(2))
