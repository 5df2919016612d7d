"""Property: for any valid command sequence, the projected records equal a plain fold."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.customer_document import PROFILE_FIELDS
from projections.customer_record import format_minor_units
from projections.projector import Projector
from projections.read_model import Keys
from projections.stored_fields import canonical_time
from tests.support.projection_helpers import all_projected, customer_service, folded
from write_side.domain.customer import CustomerError
from write_side.domain.order import OrderError
from write_side.errors import WriteError

# Two customers of one bucket and one of another bucket, in another partition.
IDS = (1, 2, 17)
CUSTOMER_IDS = st.sampled_from(IDS)
# Text that JSON encoders like to get wrong: quotes, backslashes, slashes, non-ASCII.
# Short values, empty ones, the record's own separator and escape bytes (other producers
# may send them), and long ones: a record cut into 1 to 4 chunks, or kept whole past that,
# with multi-byte characters across the cuts.
TEXT = st.one_of(
    st.text(alphabet='ab"\\/é中😀 \x1e\x1f0', min_size=0, max_size=6),
    st.text(alphabet="xé中😀\x1f", min_size=20, max_size=120),
)
PROFILE_VALUE = st.one_of(st.none(), TEXT)
PROFILE = st.dictionaries(st.sampled_from(PROFILE_FIELDS), PROFILE_VALUE, max_size=8)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=3, minutes=30)), timezone(-timedelta(hours=8))]
)
MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=ZONES
)
CENTS = st.integers(min_value=1, max_value=100_000_000_000_000)  # up to the 10^12 limit

LOGIN = st.tuples(st.just("login"), CUSTOMER_IDS, MOMENTS)
ORDER = st.tuples(st.just("order"), CUSTOMER_IDS, CENTS)
COMMANDS = st.lists(
    st.one_of(
        st.tuples(st.just("register"), CUSTOMER_IDS, PROFILE),
        st.tuples(st.just("update"), CUSTOMER_IDS, PROFILE),
        LOGIN,
        LOGIN,  # logins and orders twice: the totals and the maximum are what can go wrong
        st.tuples(st.just("deactivate"), CUSTOMER_IDS),
        st.tuples(st.just("reactivate"), CUSTOMER_IDS),
        ORDER,
        ORDER,
        st.tuples(st.just("cancel"), st.integers(0, 5)),
        st.tuples(st.just("refund"), st.integers(0, 5), CENTS),
    ),
    min_size=6,
    max_size=30,
)


@dataclass
class Expected:
    """An independent model of the totals, from the commands that succeeded."""

    spent: dict[int, int] = field(default_factory=dict)
    orders: dict[int, int] = field(default_factory=dict)
    last_login: dict[int, datetime] = field(default_factory=dict)


def amount(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    profiles=st.lists(PROFILE, min_size=1, max_size=3),
    commands=COMMANDS,
    page_size=st.integers(min_value=1, max_value=8),
    chunk=st.integers(min_value=1, max_value=3),
)
def test_projected_records_equal_a_plain_fold_of_the_same_events(
    redis_url: str,
    profiles: list[dict[str, str | None]],
    commands: list[tuple[Any, ...]],
    page_size: int,
    chunk: int,
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(f"t{uuid.uuid4().hex[:12]}")
    with (
        tempfile.TemporaryDirectory() as folder,
        customer_service(f"sqlite:///{Path(folder) / 'events.sqlite'}") as service,
    ):
        expected = Expected()
        orders: list[tuple[str, int]] = []
        # Most customers exist from the start, so most commands have something to act on.
        registrations = [
            ("register", n, profile) for n, profile in zip(IDS, profiles, strict=False)
        ]
        for command in registrations + commands:
            # Refused commands append nothing; the model skips them too.
            with contextlib.suppress(WriteError, CustomerError, OrderError):
                run(service, command, orders, expected)
        try:
            Projector(service.recorder, client, keys, page_size=page_size, chunk=chunk).catch_up()
            documents = all_projected(client, keys)
            assert documents == folded(service)
            for customer_id, document in documents.items():
                assert document["total_spent"] == format_minor_units(
                    expected.spent.get(customer_id, 0)
                )
                assert document["total_orders"] == expected.orders.get(customer_id, 0)
                login = expected.last_login.get(customer_id)
                assert document["last_login"] == (canonical_time(login) if login else None)
        finally:
            names = [*client.scan_iter(match=f"{{{keys.prefix}:*")]
            names += [*client.scan_iter(match=f"{{{keys.prefix}}}:*")]
            if names:
                client.delete(*names)
            client.close()


def run(
    service: Any, command: tuple[Any, ...], orders: list[tuple[str, int]], expected: Expected
) -> None:
    kind, *args = command
    if kind == "register":
        service.register_customer(args[0], args[1])
    elif kind == "update":
        service.update_profile(args[0], args[1])
    elif kind == "login":
        service.record_login(args[0], args[1])
        latest = expected.last_login.get(args[0])
        if latest is None or args[1] > latest:
            expected.last_login[args[0]] = args[1]
    elif kind == "deactivate":
        service.deactivate_customer(args[0])
    elif kind == "reactivate":
        service.reactivate_customer(args[0])
    elif kind == "order":
        customer_id, cents = args
        order_id = service.place_order(customer_id, amount(cents)).result["order_id"]
        orders.append((order_id, customer_id))
        expected.spent[customer_id] = expected.spent.get(customer_id, 0) + cents
        expected.orders[customer_id] = expected.orders.get(customer_id, 0) + 1
    elif orders:
        order_id, customer_id = orders[args[0] % len(orders)]
        if kind == "cancel":
            order = service.get_order(order_id)
            remaining = int((order.amount - order.refunded).scaleb(2))
            service.cancel_order(order_id)
            expected.spent[customer_id] -= remaining
            expected.orders[customer_id] -= 1
        else:
            service.refund_order(order_id, amount(args[1]))
            expected.spent[customer_id] -= args[1]
