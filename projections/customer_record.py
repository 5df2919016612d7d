"""A customer's record in its bucket hash: the fields, their encoding, and the document.

Layout 2 keeps 16 customers in one hash (projections/read_model.py says which), and keeps
every field of that hash at most 64 bytes, so Redis stores the hash as a listpack (Redis's
and Valkey's default `hash-max-listpack-value` is 64, `hash-max-listpack-entries` 128):
about a fifth of the memory of a hashtable. A customer at offset X (one hex digit, the
id's place in its bucket) has these fields:

    Xa, Xb, Xc, Xd   the record, cut into chunks of at most CHUNK bytes in order (Xa
                     alone holds it whole when it is longer than MAX_CHUNKS chunks; that
                     bucket is then a hashtable, correct but larger)
    Xs               total spent in integer minor units (cents), maintained with HINCRBY
    Xo               total orders (placed minus cancelled), maintained with HINCRBY

The record is its values joined by SEPARATOR (0x1f), in this order:

    position, active, date_joined, last_login, then the profile values in
    contract.customer_document's PROFILE order

position is the last applied event store position (the per-customer guard that makes
replays idempotent); active is 1 or 0; times are UTC as 20 digits, YYYYMMDDhhmmssffffff
(string order is time order); a null is empty; text is kept as it is, except that the two
bytes 0x1e and 0x1f inside it are escaped (0x1e 0x30, 0x1e 0x31) and an empty text is
0x1e 0x32. The write side refuses control characters, so escaping is for events other
producers append; the projector's Lua script never has to look inside a value.
"""

from __future__ import annotations

import re
from typing import Any

from contract.customer_document import PROFILE_FIELDS, customer_document

SEPARATOR = "\x1f"
ESCAPE = "\x1e"
EMPTY_TEXT = ESCAPE + "2"
CHUNK = 64
MAX_CHUNKS = 4
CHUNK_LETTERS = "abcd"
FIRST_CHUNK = b"a"  # every customer present has its first chunk
SPENT_LETTER, ORDERS_LETTER = "s", "o"

# Indexes into a record's values.
R_POSITION, R_ACTIVE, R_DATE_JOINED, R_LAST_LOGIN = 0, 1, 2, 3
R_PROFILE = 4
R_WIDTH = R_PROFILE + len(PROFILE_FIELDS)

_OFFSETS = "0123456789abcdef"
# HMGET's fields for the customer at each offset: the chunks, then spent and orders.
FIELDS_AT: tuple[tuple[bytes, ...], ...] = tuple(
    tuple(f"{o}{letter}".encode() for letter in CHUNK_LETTERS + SPENT_LETTER + ORDERS_LETTER)
    for o in _OFFSETS
)
_UNESCAPE = re.compile(ESCAPE + "([01])")
_UNESCAPED = {"0": ESCAPE, "1": SEPARATOR}

Fields = list[bytes | None]  # HMGET's reply for FIELDS_AT[offset]


def place_of(customer_id: int) -> int:
    """The customer's place in its bucket, as an index into FIELDS_AT."""
    return customer_id & 15


def offset_of(customer_id: int) -> str:
    """The customer's place in its bucket, as its fields' first character."""
    return _OFFSETS[place_of(customer_id)]


def fields_of(customer_id: int) -> tuple[bytes, ...]:
    return FIELDS_AT[place_of(customer_id)]


def encode_text(value: str | None) -> str:
    """A profile value as the record holds it (empty: null)."""
    if value is None:
        return ""
    if not value:
        return EMPTY_TEXT
    if ESCAPE in value or SEPARATOR in value:
        return value.replace(ESCAPE, ESCAPE + "0").replace(SEPARATOR, ESCAPE + "1")
    return value


def decode_text(text: str) -> str | None:
    if not text:
        return None
    if ESCAPE not in text:
        return text
    if text == EMPTY_TEXT:
        return ""
    return _UNESCAPE.sub(lambda match: _UNESCAPED[match[1]], text)


def compact_time(iso: str | None) -> str:
    """A canonical UTC time (projections.stored_fields) as 20 digits; None as empty."""
    if iso is None:
        return ""
    return iso[0:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19] + iso[20:26]


def iso_time(digits: str) -> str | None:
    if not digits:
        return None
    d = digits
    return f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}.{d[14:20]}+00:00"


def encode_record(
    position: int,
    active: bool,
    date_joined: str | None,
    last_login: str | None,
    profile: tuple[str | None, ...] | list[str | None],
) -> bytes:
    """The record as the projector's script writes it (times canonical ISO 8601)."""
    values = [
        str(position),
        "1" if active else "0",
        compact_time(date_joined),
        compact_time(last_login),
        *(encode_text(value) for value in profile),
    ]
    return SEPARATOR.join(values).encode()


def record_of(fields: Fields) -> bytes | None:
    """The record from its chunk fields, or None when the customer is absent."""
    first = fields[0]
    if first is None:
        return None
    rest = [chunk for chunk in fields[1:MAX_CHUNKS] if chunk is not None]
    return first + b"".join(rest) if rest else first


def chunked(offset: str, record: bytes) -> dict[str, bytes]:
    """The chunk fields a record is stored in (what the script writes, for tests and tools)."""
    if len(record) > CHUNK * MAX_CHUNKS:
        return {offset + CHUNK_LETTERS[0]: record}
    return {
        offset + CHUNK_LETTERS[index]: record[start : start + CHUNK]
        for index, start in enumerate(range(0, len(record), CHUNK))
    }


def format_minor_units(minor: int) -> str:
    """Integer cents as a decimal string with exactly two places: 123450 -> "1234.50"."""
    if minor >= 100:  # the common case, in a third of the time
        digits = str(minor)
        return f"{digits[:-2]}.{digits[-2:]}"
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{units}.{cents:02d}"


def record_values(record: bytes | str) -> list[str]:
    """A record's values, still encoded (R_* index them)."""
    return _split(record.decode() if isinstance(record, bytes) else record)


def _split(text: str) -> list[str]:
    values = text.split(SEPARATOR)
    if len(values) != R_WIDTH:
        raise ValueError(f"a customer record has {len(values)} values, not {R_WIDTH}")
    return values


def read_customer(
    customer_id: int, record: bytes | str, spent: bytes | str | int, orders: bytes | str | int
) -> dict[str, Any]:
    """The customer document (contract.customer_document) from a record and its totals."""
    text = record.decode() if isinstance(record, bytes) else record
    values = _split(text)
    if ESCAPE in text:
        profile = [decode_text(value) for value in values[R_PROFILE:]]
    else:  # nothing escaped, the common case: only empty values (nulls) to map
        profile = [value or None for value in values[R_PROFILE:]]
    return customer_document(
        customer_id,
        profile,
        values[R_ACTIVE] == "1",
        iso_time(values[R_DATE_JOINED]),
        iso_time(values[R_LAST_LOGIN]),
        int(orders),
        format_minor_units(int(spent)),
    )


def read_fields(customer_id: int, fields: Fields) -> dict[str, Any] | None:
    """The document from HMGET's reply for fields_of(customer_id); None if absent."""
    record = record_of(fields)
    if record is None:
        return None
    return read_customer(customer_id, record, fields[MAX_CHUNKS] or 0, fields[MAX_CHUNKS + 1] or 0)


def applied_position(record: bytes | str) -> int:
    """The last event store position applied to this customer."""
    text = record.decode() if isinstance(record, bytes) else record
    return int(text.partition(SEPARATOR)[0])


def bucket_records(
    bucket: int, fields: dict[bytes, bytes]
) -> list[tuple[int, bytes, bytes | int, bytes | int]]:
    """Every customer a bucket hash holds (HGETALL's reply): id, record, spent, orders."""
    found = []
    for offset, names in enumerate(FIELDS_AT):
        record = record_of([fields.get(name) for name in names[:MAX_CHUNKS]])
        if record is not None:
            spent = fields.get(names[MAX_CHUNKS]) or 0
            orders = fields.get(names[MAX_CHUNKS + 1]) or 0
            found.append((bucket * len(FIELDS_AT) + offset, record, spent, orders))
    return found


def spent_field(customer_id: int) -> bytes:
    return fields_of(customer_id)[MAX_CHUNKS]


def orders_field(customer_id: int) -> bytes:
    return fields_of(customer_id)[MAX_CHUNKS + 1]
