"""A page of stored events as the Redis commands that apply it: grouped, encoded, sent.

Each customer the page touches gets one guarded script call carrying all its changes,
the API key index one more, and each partition the page touches a last one that moves
its checkpoint to the page's end. Every call is fenced by the checkpoint the partition
held after the last page that touched it, so nothing lands on a partition that lost data.
The calls are encoded to the Redis protocol once, in the reader thread, and sent in one
write with every reply read back (a raw pipeline).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import hiredis
import orjson
from redis.exceptions import NoScriptError

from projections.customer_record import compact_time, encode_text, offset_of
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
from projections.read_model import Keys, partition_of
from projections.redis_client import RawCommand, RedisClient, send_raw
from projections.scripts import advance_checkpoint, apply_customer, apply_keys

CustomerCalls = list[tuple[int, list[str | int]]]  # (customer id, its script's arguments)
Fences = dict[int, int]  # partition -> the checkpoint it must hold (after the last page)
Tokens = Mapping[int, int]  # partition -> a worker's fencing token for it (none: not a worker)


class PreparedPage(NamedTuple):
    """A page made ready in the reader thread: script arguments per customer."""

    customers: CustomerCalls
    keys_ops: bytes | None
    generation: int  # the generation `commands` were encoded for
    commands: list[RawCommand]  # the page's scripts in the Redis protocol, with their keys
    partitions: list[int]  # the partitions the page touches (their checkpoints move)
    last: int  # the last position this page settles (before a poison event, if any)
    events: int
    poison: UnprojectableEventError | None


class FencedError(Exception):
    """Partitions have a newer owner (this worker was taken for dead): nothing of the page
    was written onto them; `partitions` are those that refused."""

    def __init__(self, partitions: frozenset[int]) -> None:
        super().__init__(f"{len(partitions)} partition(s) have a newer owner")
        self.partitions = partitions


class ProjectionStoreError(Exception):
    """Redis refused a step (e.g. a key of the wrong type); the page is not recorded."""


class PartitionsRolledBackError(Exception):
    """Partitions hold a checkpoint below their fence: their node lost data. Nothing of
    the page was written onto them; `found` is what each still holds."""

    def __init__(self, found: dict[int, int]) -> None:
        super().__init__(f"{len(found)} partition(s) went back, e.g. {min(found.items())}")
        self.found = found


def prepare_page(
    page: Sequence[Row],
    keys: Keys,
    generation: int,
    is_skipped: Callable[[int], bool],
    fences: Fences,
    only: frozenset[int] | None = None,
    tokens: Tokens | None = None,
    key_index: bool | None = None,
) -> PreparedPage:
    """The page as ready-to-send script calls; stops at a poison event not skipped.

    `fences` are the checkpoints the partitions hold before this page; the touched ones
    are moved to the page's end, for the next page. With `only`, just those partitions'
    customers are applied (a partition's repair, a worker's share), and the API key
    changes only if `key_index`; `tokens` fence a worker's calls.
    """
    with_keys = only is None if key_index is None else key_index
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
            if only is not None and partition_of(change.customer_id) not in only:
                continue
            changes = by_customer.get(change.customer_id)
            if changes is None:
                by_customer[change.customer_id] = [change]
            else:
                changes.append(change)
        elif with_keys:
            assert isinstance(change, KeyChange)
            key_changes.append(change)
    customers = [
        (customer_id, _customer_args(changes)) for customer_id, changes in by_customer.items()
    ]
    keys_ops = _key_ops(key_changes) if key_changes else None
    partitions = sorted({partition_of(customer_id) for customer_id in by_customer})
    commands = encode_commands(
        keys, generation, customers, keys_ops, partitions, fences, last, tokens or {}
    )
    for partition in partitions:
        fences[partition] = last
    return PreparedPage(
        customers, keys_ops, generation, commands, partitions, last, len(page), poison
    )


def encode_commands(
    keys: Keys,
    generation: int,
    customers: CustomerCalls,
    keys_ops: bytes | None,
    partitions: list[int],
    fences: Fences,
    last: int,
    tokens: Tokens,
) -> list[RawCommand]:
    """The page's script calls on one generation's keys, in the Redis protocol: the
    customers' and the key index's, then the touched partitions' checkpoints."""
    sha = apply_customer.sha
    commands = []
    checkpoints = {p: keys.checkpoint(generation, p).encode() for p in partitions}
    owners = {p: keys.owner(generation, p).encode() for p in partitions if tokens.get(p)}
    for customer_id, args in customers:
        key = keys.bucket(generation, customer_id).encode()
        partition = partition_of(customer_id)
        fence = fences.get(partition, 0)
        token = tokens.get(partition, 0)
        script_keys: tuple[bytes, ...] = (key, checkpoints[partition])
        if token:
            script_keys += (owners[partition],)
        commands.append(
            (key, _evalsha(sha, script_keys, offset_of(customer_id), fence, token, *args))
        )
    if keys_ops is not None:
        key = keys.api_keys(generation).encode()
        commands.append((key, _evalsha(apply_keys.sha, (key,), keys_ops)))
    for partition, key in checkpoints.items():
        token = tokens.get(partition, 0)
        commands.append(_advance(key, last, fences.get(partition, 0), token, owners.get(partition)))
    return commands


def checkpoint_command(
    keys: Keys, generation: int, partition: int, position: int, fence: int, token: int = 0
) -> RawCommand:
    """Move a partition's checkpoint up to `position`, fenced like the page's calls."""
    key = keys.checkpoint(generation, partition).encode()
    owner = keys.owner(generation, partition).encode() if token else None
    return _advance(key, position, fence, token, owner)


def _advance(key: bytes, position: int, fence: int, token: int, owner: bytes | None) -> RawCommand:
    if owner is None:
        return key, _evalsha(advance_checkpoint.sha, (key,), position, fence, 0)
    return key, _evalsha(advance_checkpoint.sha, (key, owner), position, fence, token)


def load_scripts(client: RedisClient) -> None:
    apply_customer.load(client)
    apply_keys.load(client)
    advance_checkpoint.load(client)


def execute(client: RedisClient, keys: Keys, commands: list[RawCommand]) -> None:
    """Send the commands; raises PartitionsRolledBackError if a fence refused some, and
    ProjectionStoreError if Redis refused another step."""
    for attempt in range(2):
        errors = send_raw(client, commands)
        if not errors:
            return
        if attempt == 0 and all(isinstance(e, NoScriptError) for e in errors):
            # The server forgot the scripts (restart, SCRIPT FLUSH): load them and send
            # the chunk again; the guards make the repeat harmless.
            load_scripts(client)
            continue
        messages = [str(error) for error in errors]
        fenced = _fenced(keys, messages)
        if fenced:
            raise FencedError(fenced)
        found = _rolled_back(keys, messages)
        if found:
            raise PartitionsRolledBackError(found)
        raise ProjectionStoreError(f"Redis refused a projection step: {errors[0]}")


def _rolled_back(keys: Keys, messages: list[str]) -> dict[int, int]:
    """partition -> checkpoint found, from the fences' ROLLBACK replies."""
    found: dict[int, int] = {}
    for message in messages:
        words = message.split()
        if len(words) == 3 and words[0] == "ROLLBACK" and words[1].isdigit():
            partition = keys.partition_of_key(words[2])
            if partition is not None:
                found[partition] = int(words[1])
    return found


def _fenced(keys: Keys, messages: list[str]) -> frozenset[int]:
    """The partitions whose owner token refused a call (FENCED replies)."""
    fenced = set()
    for message in messages:
        words = message.split()
        if len(words) == 3 and words[0] == "FENCED":
            partition = keys.partition_of_key(words[2])
            if partition is not None:
                fenced.add(partition)
    return frozenset(fenced)


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
            args.append(compact_time(joined))
            args += [encode_text(value) for value in profile]
        elif kind == PROFILE_UPDATED:
            args.append(len(change.value))
            for index, value in change.value:
                args += (index, encode_text(value))
        elif kind == LOGGED_IN:
            args.append(compact_time(change.value))
    return args


def _key_ops(changes: list[KeyChange]) -> bytes:
    return orjson.dumps(
        [(k.position, str(k.position), k.key_hash, k.role, 1 if k.revoked else 0) for k in changes]
    )


def _evalsha(sha: str, keys: tuple[bytes, ...], *args: str | int | bytes) -> bytes:
    """EVALSHA sha numkeys keys... args... in the Redis protocol (RESP), encoded by hiredis."""
    command: Any = ("EVALSHA", sha, len(keys), *keys, *args)  # hiredis's stub: too narrow
    packed: bytes = hiredis.pack_command(command)
    return packed
