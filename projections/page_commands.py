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
import redis
from redis.exceptions import NoScriptError, ResponseError

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
from projections.scripts import apply_customer, apply_keys

CustomerCalls = list[tuple[int, list[str | int]]]  # (customer id, its script's arguments)


class PreparedPage(NamedTuple):
    """A page made ready in the reader thread: script arguments per customer."""

    customers: CustomerCalls
    keys_ops: bytes | None
    generation: int  # the generation `commands` were encoded for
    commands: list[bytes]  # the page's scripts in the Redis protocol
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
) -> list[bytes]:
    """The page's script calls on one generation's keys, in the Redis protocol."""
    prefix = f"{keys.prefix}:g{generation}:c:"
    sha = apply_customer.sha
    commands = [_evalsha(sha, prefix + str(customer_id), *args) for customer_id, args in customers]
    if keys_ops is not None:
        commands.append(_evalsha(apply_keys.sha, keys.api_keys(generation), keys_ops))
    return commands


def load_scripts(client: redis.Redis) -> None:
    apply_customer.load(client)
    apply_keys.load(client)


def execute(client: redis.Redis, commands: list[bytes]) -> None:
    """Send the commands; raises ProjectionStoreError if Redis refuses one."""
    for attempt in range(2):
        errors = _send(client, commands)
        if not errors:
            return
        if attempt == 0 and all(isinstance(e, NoScriptError) for e in errors):
            # The server forgot the scripts (restart, SCRIPT FLUSH): load them and send
            # the chunk again; the guards make the repeat harmless.
            load_scripts(client)
            continue
        raise ProjectionStoreError(f"Redis refused a projection step: {errors[0]}")


def _send(client: redis.Redis, commands: list[bytes]) -> list[ResponseError]:
    """Send pre-encoded commands in one write and read every reply (a raw pipeline)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([b"".join(commands)])  # type: ignore[no-untyped-call]
        errors: list[ResponseError] = []
        for _ in commands:
            try:
                connection.read_response()
            except ResponseError as error:
                errors.append(error)
        return errors
    except BaseException:
        connection.disconnect()  # type: ignore[no-untyped-call]  # replies may be unread
        raise
    finally:
        pool.release(connection)


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


def _evalsha(sha: str, key: str, *args: str | int | bytes) -> bytes:
    """EVALSHA sha 1 key args... in the Redis protocol (RESP), encoded by hiredis in C."""
    command: Any = ("EVALSHA", sha, 1, key, *args)  # hiredis's stub types it too narrowly
    packed: bytes = hiredis.pack_command(command)
    return packed
