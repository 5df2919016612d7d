"""Producers' request and response bodies: strict, trimmed, bounded, money exact."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)

from edge.ids import MAX_CUSTOMER_ID
from write_side.domain.money import InvalidAmountError, parse_amount

CustomerId = Annotated[int, Field(gt=0, le=MAX_CUSTOMER_ID, strict=True)]
# No control characters: a NUL or an escape sequence in a name breaks the tools staff read
# customers with. Notes may still span lines and hold tabs.
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150, pattern=ONE_LINE)
]
Email = Annotated[EmailStr, Field(max_length=254)]
MobileNumber = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 \-]*[0-9]$"
    ),
]
NationalCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=ONE_LINE)
]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=TEXT)]
Gender = Literal["male", "female"]
OrderId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\-]+$"
    ),
]


def _not_in_future(value: date) -> date:
    if value > datetime.now(UTC).date():
        raise ValueError("birth_date must not be in the future")
    return value


BirthDate = Annotated[date, AfterValidator(_not_in_future)]


def _exact_amount(value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValueError("amount must be sent as a decimal string or an exact JSON number")
    try:
        return parse_amount(value)
    except InvalidAmountError as error:
        raise ValueError(f"amount {error}") from None


Amount = Annotated[
    Decimal,
    BeforeValidator(_exact_amount),
    Field(
        description='A decimal string such as "12.34"; at most 2 places, > 0, <= 10^12',
        examples=["12.34"],
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfileFields(_Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"mobile_number": "+98 912 555 0147", "notes": "New number from May 2024."}
            ]
        }
    )

    first_name: Name | None = None
    last_name: Name | None = None
    email: Email | None = None
    mobile_number: MobileNumber | None = None
    national_code: NationalCode | None = None
    birth_date: BirthDate | None = None
    gender: Gender | None = None
    notes: Notes | None = None

    def profile(self, only_set: bool) -> dict[str, str | None]:
        """Domain form with ISO dates; with only_set, just the fields the request named."""
        values = self.model_dump(exclude_unset=only_set, include=set(ProfileFields.model_fields))
        profile: dict[str, str | None] = {}
        for name, value in values.items():
            if isinstance(value, date):
                profile[name] = value.isoformat()
            else:
                profile[name] = value
        return profile


class RegisterCustomer(ProfileFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "first_name": "Maryam",
                    "last_name": "Karimi",
                    "email": "maryam.karimi@example.com",
                    "mobile_number": "+98 912 555 0146",
                    "national_code": "0012345679",
                    "birth_date": "1990-04-17",
                    "gender": "female",
                    "notes": "Prefers to be contacted by email.",
                }
            ]
        }
    )

    id: CustomerId | None = None


class RecordLogin(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"at": "2024-05-06T07:08:09+00:00"}]})

    at: AwareDatetime | None = None


class PlaceOrder(_Strict):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"customer_id": 1, "amount": "12.34"}]}
    )

    customer_id: CustomerId
    amount: Amount
    order_id: OrderId | None = None
    placed_at: AwareDatetime | None = None


class RefundOrder(_Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": "2.50"}]})

    amount: Amount


class CustomerWritten(BaseModel):
    id: int
    position: int = Field(description="Event store position of the write's last event")


class OrderPlaced(BaseModel):
    order_id: str
    position: int = Field(description="Event store position of the write's last event")


class Positioned(BaseModel):
    position: int = Field(description="Event store position of the write's last event")


class ErrorBody(BaseModel):
    detail: str
