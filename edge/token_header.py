"""Parse `Authorization: Token <key>` exactly as Django REST framework's TokenAuthentication.

DRF reads the header as bytes (Django joins repeated headers with ","), splits them on
ASCII whitespace, compares the scheme word case-insensitively and decodes the key as
UTF-8. Every path of this service calls `key_from_header` with the header as the edge
pipeline joined it, so all of them answer alike; tests compare it with DRF's own code.
"""

from __future__ import annotations

NOT_PROVIDED = "Authentication credentials were not provided."
NO_CREDENTIALS = "Invalid token header. No credentials provided."
HAS_SPACES = "Invalid token header. Token string should not contain spaces."
INVALID_CHARACTERS = "Invalid token header. Token string should not contain invalid characters."
INVALID_TOKEN = "Invalid token."  # noqa: S105 (an error message)
PERMISSION_DENIED = "You do not have permission to perform this action."

KEYWORD = b"token"


class TokenHeaderError(Exception):
    """The header is missing or malformed; `detail` is DRF's wording for the case."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def key_from_header(value: bytes | str | None) -> str:
    """The key in a Token header; raises TokenHeaderError with DRF's detail otherwise.

    `value` is the raw header (bytes), or the framework's latin-1 text of it.
    """
    if value is None:
        raise TokenHeaderError(NOT_PROVIDED)
    raw = value.encode("latin-1") if isinstance(value, str) else value
    parts = raw.split()  # ASCII whitespace only, as DRF's bytes.split()
    if not parts or parts[0].lower() != KEYWORD:
        raise TokenHeaderError(NOT_PROVIDED)
    if len(parts) == 1:
        raise TokenHeaderError(NO_CREDENTIALS)
    if len(parts) > 2:
        raise TokenHeaderError(HAS_SPACES)
    try:
        return parts[1].decode()
    except UnicodeError:
        raise TokenHeaderError(INVALID_CHARACTERS) from None
