"""Request bodies as JSON whose numbers are read exactly, and whose cost is bounded.

Numbers become Decimal (or int) from their text, never floats, and a number's text is
bounded before it is converted: `1e999999999` is refused in microseconds instead of being
expanded later by whoever prints it. NaN and Infinity, lone surrogates and deep nesting are
refused too. A body that is not JSON at all is `MalformedBodyError` (400); JSON carrying a
value no field could hold is `RefusedValueError` (422). Neither message echoes the input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40
MAX_EXPONENT = 64

NOT_UTF8 = "The request body is not valid UTF-8."
TOO_DEEP = f"JSON nested deeper than {MAX_DEPTH} levels."
NUMBER_TOO_LONG = f"A JSON number has more than {MAX_NUMBER_CHARS} characters."
EXPONENT_TOO_LARGE = f"A JSON number's exponent is beyond +/-{MAX_EXPONENT}."
NOT_A_NUMBER = "NaN and Infinity are not JSON numbers."
LONE_SURROGATE = "A JSON string holds a lone surrogate escape, which is no character."


Location = tuple[str | int, ...]


class BodyError(ValueError):
    """A body the edge refuses; `status` and `detail` are the answer."""

    status = 400

    def __init__(self, detail: str, loc: Location = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.loc = loc


class MalformedBodyError(BodyError):
    status = 400


class RefusedValueError(BodyError):
    """JSON holding a value no field could hold; `loc` is where, as in validation errors."""

    status = 422


class _Refused:
    """Stands in for a refused number until the walk knows where it was."""

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


def _decimal(text: str) -> Decimal | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(NUMBER_TOO_LONG)
    mark = max(text.find("e"), text.find("E"))
    if mark >= 0 and abs(int(text[mark + 1 :])) > MAX_EXPONENT:
        return _Refused(EXPONENT_TOO_LARGE)
    return Decimal(text)


def _int(text: str) -> int | _Refused:
    return int(text) if len(text) <= MAX_NUMBER_CHARS else _Refused(NUMBER_TOO_LONG)


def _constant(_: str) -> _Refused:
    return _Refused(NOT_A_NUMBER)


_DECODER = json.JSONDecoder(parse_float=_decimal, parse_int=_int, parse_constant=_constant)


def parse_json(body: bytes) -> Any:
    """The JSON value of a request body; raises BodyError (400 or 422) otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBodyError(NOT_UTF8) from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise RefusedValueError(TOO_DEEP) from None
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise MalformedBodyError(f"Malformed JSON: {error.msg} at {where}.") from None
    _check_shape(value)
    return value


def _check_shape(value: Any) -> None:
    """Depth, numbers and strings, walked without recursion (the value may be deep)."""
    pending: list[tuple[Any, Location]] = [(value, ())]
    while pending:
        item, loc = pending.pop()
        if isinstance(item, str):
            _check_text(item, loc)
        elif isinstance(item, _Refused):
            raise RefusedValueError(item.detail, loc)
        elif isinstance(item, dict | list):
            if len(loc) >= MAX_DEPTH:
                raise RefusedValueError(TOO_DEEP, loc)
            if isinstance(item, dict):
                for key, member in item.items():
                    _check_text(key, loc)
                    pending.append((member, (*loc, key)))
            else:
                pending.extend((member, (*loc, index)) for index, member in enumerate(item))


def _check_text(text: str, loc: Location) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise RefusedValueError(LONE_SURROGATE, loc) from None


BODY_ERROR_KEY = "edge.body_error"


class ExactJSONRequest(Request):
    """A request whose `json()` is `parse_json`; a refused body is noted, not raised.

    The framework parses bodies before it runs dependencies, so raising here would answer
    400/422 before authentication. The route's dependencies raise the noted error once the
    caller is known (see `noted_body_error`).
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except BodyError as error:
                self.scope[BODY_ERROR_KEY] = error
                self._json = None
        return self._json


def noted_body_error(request: Request) -> BodyError | None:
    """The refusal `ExactJSONRequest` noted for this request's body, if any."""
    error: BodyError | None = request.scope.get(BODY_ERROR_KEY)
    return error


class ExactJSONRoute(APIRoute):
    """Route class for routers whose bodies carry money."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact_handler
