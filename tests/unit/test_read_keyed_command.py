"""A command packed once but for its key is byte for byte what hiredis packs each time."""

from __future__ import annotations

import hiredis
import pytest

from projections.customer_record import FIELDS_AT, fields_of, place_of
from read_side.redis_link import KeyedCommand

KEYS = ["", "k", "{rm:17}:g3:b:4113", "{préfixe:0}:g1:b:0", "x" * 1000]


@pytest.mark.parametrize("key", KEYS)
def test_every_customer_place_packs_its_hmget_as_hiredis_does(key: str) -> None:
    for fields in FIELDS_AT:
        assert KeyedCommand("HMGET", *fields).packed(key) == hiredis.pack_command(
            ("HMGET", key, *fields)
        )


@pytest.mark.parametrize("key", KEYS)
def test_a_command_with_nothing_after_its_key_packs_as_hiredis_does(key: str) -> None:
    assert KeyedCommand("GET").packed(key) == hiredis.pack_command(("GET", key))


def test_a_customers_place_names_the_fields_of_that_customer() -> None:
    for customer_id in (0, 1, 15, 16, 17, 4113, 2**63 - 1):
        assert FIELDS_AT[place_of(customer_id)] == fields_of(customer_id)
