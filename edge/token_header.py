"""Parse `Authorization: Token <key>` exactly as Django REST framework's TokenAuthentication."""

from __future__ import annotations

NOT_PROVIDED = "Authentication credentials were not provided."
NO_CREDENTIALS = "Invalid token header. No credentials provided."
HAS_SPACES = "Invalid token header. Token string should not contain spaces."
INVALID_CHARACTERS = "Invalid token header. Token string should not contain invalid characters."
INVALID_TOKEN = "Invalid token."  # noqa: S105 (an error message)
PERMISSION_DENIED = "You do not have permission to perform this action."


class TokenHeaderError(Exception):
    """The header is missing or malformed; `detail` is DRF's wording for the case."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def key_from_header(value: str | None) -> str:
    """The key in a Token header; raises TokenHeaderError with DRF's detail otherwise."""
    if not value:
        raise TokenHeaderError(NOT_PROVIDED)
    parts = value.split()
    if not parts or parts[0].lower() != "token":
        raise TokenHeaderError(NOT_PROVIDED)
    if len(parts) == 1:
        raise TokenHeaderError(NO_CREDENTIALS)
    if len(parts) > 2:
        raise TokenHeaderError(HAS_SPACES)
    key = parts[1]
    if not key.isascii() or not key.isprintable():
        raise TokenHeaderError(INVALID_CHARACTERS)
    return key
