"""Customer ids in URLs, one rule for both sides: Django's `<int:pk>` bounded to 64 bits.

Django's int converter matches `[0-9]+` (ASCII digits, leading zeros allowed: `01` is 1)
and nothing else: no sign, space, underscore or other script's digits. Ids are at most
2^63-1, the largest a signed 64-bit column holds; anything else is no customer (404).
"""

from __future__ import annotations

import sys
from typing import Any

MAX_CUSTOMER_ID = 2**63 - 1
# How both APIs document an id in their paths: FastAPI's Path(**CUSTOMER_ID_PARAMETER).
CUSTOMER_ID_PARAMETER: dict[str, Any] = {
    "description": "Customer id: ASCII digits (leading zeros allowed), 1 to 2^63-1",
    "json_schema_extra": {"type": "integer", "minimum": 1, "maximum": MAX_CUSTOMER_ID},
}
_MAX_DIGITS = len(str(MAX_CUSTOMER_ID))


def parse_customer_id(segment: str) -> int | None:
    """The id a URL segment names, or None when it names no customer."""
    if not segment.isascii() or not segment.isdigit():  # "" is no digit either
        return None
    if len(segment) < _MAX_DIGITS:  # the common case: below 2^63-1, whatever the digits
        return int(segment) or None
    # Django's converter calls int(), which refuses strings longer than the interpreter's
    # digit limit (leading zeros included): no route, as there.
    limit = sys.get_int_max_str_digits()
    if limit and len(segment) > limit:
        return None
    significant = segment.lstrip("0")
    if not significant or len(significant) > _MAX_DIGITS:
        return None
    value = int(significant)
    return value if value <= MAX_CUSTOMER_ID else None
