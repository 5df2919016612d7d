"""The Redis read model: key layout and record encoding, in one place.

Key layout (PREFIX defaults to "customers"; generations make rebuilds blue/green):

    {PREFIX}:generation            current generation number (string int)
    {PREFIX}:g{N}:tracking         hash: application name -> last applied position, and
                                   "layout" -> the LAYOUT the generation was written in
    {PREFIX}:dead-letters          list of JSON poison-event reports
    {PREFIX}:skips                 hash: position -> JSON of an operator's decision to skip
    {PREFIX}:projector             hash: pid, host, position, head, at; a running projector
                                   renews it every second and it expires after 10 s
    {PREFIX}:projector:{host}:{pid}  the same, one per projector process (health checks)
    {PREFIX}:repair                hash: reason, target, detected_at, while Redis is being
                                   repaired after losing data (reads answer 503 meanwhile)
    PREFIX:g{N}:c:{customer_id}    hash, one per customer (see below)
    PREFIX:g{N}:keys               hash: API key sha256 -> JSON [position, role, revoked 0|1]
    PREFIX:positions               pub/sub channel: "{N}:{position}" after each applied page

Meta keys share the hash tag {PREFIX}, so multi-key steps on them stay in one cluster
slot. Every atomic step on customer data touches exactly one customer key.

A customer hash has three fields:

    d   JSON array: [position, active, date_joined, last_login, then the profile values
                     in contract.customer_document's PROFILE order]
        position is the last applied event store position, as a decimal string (the
        per-customer guard that makes replays idempotent); active is 1 or 0; times are
        UTC ISO 8601 with microseconds (so string order is time order); absent values null
    s   total spent in integer minor units (cents), maintained with HINCRBY
    o   total orders (placed minus cancelled), maintained with HINCRBY

LAYOUT names this encoding. The projector records it in each generation it writes and
refuses to write a generation recorded in another; a reader finding another answers 503
and says why. A change of encoding (a profile field added, say) therefore takes a
rebuild, and old and new versions never read each other's records.
"""

from __future__ import annotations

from typing import Any

import orjson

from contract.customer_document import PROFILE_FIELDS, customer_document

LAYOUT_FIELD = "layout"
LAYOUT = "1:" + ",".join(PROFILE_FIELDS)

DEFAULT_PREFIX = "customers"
# The application whose notification log is projected: its field in the tracking hash.

# Indexes into the `d` array.
D_POSITION, D_ACTIVE, D_DATE_JOINED, D_LAST_LOGIN = 0, 1, 2, 3
D_PROFILE = 4

DOC_FIELD, SPENT_FIELD, ORDERS_FIELD = "d", "s", "o"


class Keys:
    """Key names for one deployment (prefix) of the read model."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self._meta = f"{{{prefix}}}"

    @property
    def generation(self) -> str:
        return f"{self._meta}:generation"

    def tracking(self, generation: int) -> str:
        return f"{self._meta}:g{generation}:tracking"

    @property
    def dead_letters(self) -> str:
        return f"{self._meta}:dead-letters"

    @property
    def skips(self) -> str:
        return f"{self._meta}:skips"

    @property
    def projector(self) -> str:
        return f"{self._meta}:projector"

    def projector_beat(self, host: str, pid: int) -> str:
        return f"{self._meta}:projector:{host}:{pid}"

    @property
    def repair(self) -> str:
        return f"{self._meta}:repair"

    @property
    def positions_channel(self) -> str:
        return f"{self.prefix}:positions"

    def customer(self, generation: int, customer_id: int) -> str:
        return f"{self.prefix}:g{generation}:c:{customer_id}"

    def customer_pattern(self, generation: int) -> str:
        return f"{self.prefix}:g{generation}:c:*"

    def api_keys(self, generation: int) -> str:
        return f"{self.prefix}:g{generation}:keys"

    def generation_pattern(self, generation: int) -> str:
        return f"{self.prefix}:g{generation}:*"


def format_minor_units(minor: int) -> str:
    """Integer cents as a decimal string with exactly two places: 123450 -> "1234.50"."""
    sign = "-" if minor < 0 else ""
    units, cents = divmod(abs(minor), 100)
    return f"{sign}{units}.{cents:02d}"


def read_customer(
    customer_id: int, doc: bytes | str, spent: bytes | str | int, orders: bytes | str | int
) -> dict[str, Any]:
    """The customer document (contract.customer_document) from a customer hash's fields."""
    values = orjson.loads(doc)
    return customer_document(
        customer_id,
        values[D_PROFILE : D_PROFILE + len(PROFILE_FIELDS)],
        values[D_ACTIVE] in (1, "1", True),
        values[D_DATE_JOINED],
        values[D_LAST_LOGIN],
        int(orders),
        format_minor_units(int(spent)),
    )


def render_customer(
    customer_id: int, doc: bytes | str, spent: bytes | str | int, orders: bytes | str | int
) -> bytes:
    """The 200 body as JSON bytes."""
    return orjson.dumps(read_customer(customer_id, doc, spent, orders))


def applied_position(doc: bytes | str) -> int:
    """The last event store position applied to this customer."""
    return int(orjson.loads(doc)[D_POSITION])
