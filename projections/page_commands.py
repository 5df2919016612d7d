"""A page of stored events as the Redis commands that apply it: grouped, encoded, sent.

Each customer the page touches gets one guarded script call carrying all its changes,
and the API key index one more. The calls are encoded to the Redis protocol once, in the
reader thread, and sent in one write with every reply read back (a raw pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import hiredis
import orjson
from redis.exceptions import NoScriptError

from projections.event_decoding import (
    LOGGED_IN,
    PROFILE_UPDATED,
    REGISTERED,
    CustomerChange,
    KeyChange,
    UnprojectableEventError,
    decode_row,
)
from projections.notification_log import Row
from projections.read_model import Keys
from projections.redis_client import RawCommand, RedisClient, send_raw
from projections.scripts import apply_customer, apply_keys

CustomerCalls = list[tuple[int, list[str | int]]]  # (customer id, its script's arguments)


class PreparedPage(NamedTuple):
    """A page made ready in the reader thread: script arguments per customer."""

    customers: CustomerCalls
    keys_ops: bytes | None
    generation: int  # the generation `commands` were encoded for
    commands: list[RawCommand]  # the page's scripts in the Redis protocol, with their keys
    last: int  # the last position this page settles (before a poison event, if any)
    events: int
    poison: UnprojectableEventError | None


class ProjectionStoreError(Exception):
    """Redis refused a step (e.g. a key of the wrong type); the page is not recorded."""


def prepare_page(
    page: Sequence[Row], keys: Keys, generation: int, is_skipped: Callable[[int], bool]
) -> PreparedPage:
    """The page as ready-to-send script calls; stops at a poison event not skipped."""
    by_customer: dict[int, list[CustomerChange]] = {}
    key_changes: list[KeyChange] = []
    last = page[-1][0]
    poison: UnprojectableEventError | None = None
    for position, topic, state in page:
        try:
            change = decode_row(position, topic, state)
        except UnprojectableEventError as error:
            if is_skipped(position):
                continue
            poison, last = error, position - 1
            break
        if change is None:
            continue
        if type(change) is CustomerChange:
            changes = by_customer.get(change.customer_id)
            if changes is None:
                by_customer[change.customer_id] = [change]
            else:
                changes.append(change)
        else:
            assert isinstance(change, KeyChange)
            key_changes.append(change)
    customers = [
        (customer_id, _customer_args(changes)) for customer_id, changes in by_customer.items()
    ]
    keys_ops = _key_ops(key_changes) if key_changes else None
    commands = encode_commands(keys, generation, customers, keys_ops)
    return PreparedPage(customers, keys_ops, generation, commands, last, len(page), poison)


def encode_commands(
    keys: Keys, generation: int, customers: CustomerCalls, keys_ops: bytes | None
) -> list[RawCommand]:
    """The page's script calls on one generation's keys, in the Redis protocol."""
    prefix = f"{keys.prefix}:g{generation}:c:"
    sha = apply_customer.sha
    commands = []
    for customer_id, args in customers:
        key = (prefix + str(customer_id)).encode()
        commands.append((key, _evalsha(sha, key, *args)))
    if keys_ops is not None:
        key = keys.api_keys(generation).encode()
        commands.append((key, _evalsha(apply_keys.sha, key, keys_ops)))
    return commands


def load_scripts(client: RedisClient) -> None:
    apply_customer.load(client)
    apply_keys.load(client)


def execute(client: RedisClient, commands: list[RawCommand]) -> None:
    """Send the commands; raises ProjectionStoreError if Redis refuses one."""
    for attempt in range(2):
        errors = send_raw(client, commands)
        if not errors:
            return
        if attempt == 0 and all(isinstance(e, NoScriptError) for e in errors):
            # The server forgot the scripts (restart, SCRIPT FLUSH): load them and send
            # the chunk again; the guards make the repeat harmless.
            load_scripts(client)
            continue
        raise ProjectionStoreError(f"Redis refused a projection step: {errors[0]}")


def _customer_args(changes: list[CustomerChange]) -> list[str | int]:
    """The customer script's arguments: the last position, then each change, flat."""
    totals: list[tuple[int, int]] = []
    spent = orders = 0
    for change in reversed(changes):
        spent += change.spent
        orders += change.orders
        totals.append((spent, orders))
    totals.reverse()
    args: list[str | int] = [changes[-1].position]
    for change, (spent_from_here, orders_from_here) in zip(changes, totals, strict=True):
        kind = change.kind
        args += (change.position, kind, spent_from_here, orders_from_here)
        if kind == REGISTERED:
            joined, profile = change.value
            args.append(joined)
            args += ["" if value is None else "=" + value for value in profile]
        elif kind == PROFILE_UPDATED:
            args.append(len(change.value))
            for index, value in change.value:
                args += (index, "" if value is None else "=" + value)
        elif kind == LOGGED_IN:
            args.append(change.value)
    return args


def _key_ops(changes: list[KeyChange]) -> bytes:
    return orjson.dumps(
        [(k.position, str(k.position), k.key_hash, k.role, 1 if k.revoked else 0) for k in changes]
    )


def _evalsha(sha: str, key: bytes, *args: str | int | bytes) -> bytes:
    """EVALSHA sha 1 key args... in the Redis protocol (RESP), encoded by hiredis in C."""
    command: Any = ("EVALSHA", sha, 1, key, *args)  # hiredis's stub types it too narrowly
    packed: bytes = hiredis.pack_command(command)
    return packed
