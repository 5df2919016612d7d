"""The projector: the notification log, in pages, into the Redis read model, exactly once.

Per page: decode every event, group the changes by customer, send one guarded script per
touched customer (and one for the API key index) in a pipeline, then record the page's
last position. Each script applies only the changes after the position its record has
already applied, so a crash anywhere — before, inside or after the pipeline, before or
after the position is recorded — only means a page is sent again, and nothing counts
twice. No atomic step spans two customers' keys, so this holds on Redis Cluster too.

A reader thread fetches, decodes and encodes the next page while this one is applied, so
the event store's, Python's and Redis's work overlap.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import hiredis
import orjson
import redis
from eventsourcing.persistence import ApplicationRecorder, IntegrityError
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
from projections.notification_log import Prefetch, Row, page_reader
from projections.read_model import Keys
from projections.repair import ReadModelLostError, clear_if_repaired, mark, read_marker
from projections.scripts import apply_customer, apply_keys
from projections.tracking import RedisTrackingRecorder, TrackingRolledBackError
from projections.watermark import Watermark

logger = logging.getLogger(__name__)

APPLICATION_NAME = "customers"
DEFAULT_PAGE_SIZE = 5000
# Customers per pipeline round trip: bounds memory and the size of one write burst.
DEFAULT_CHUNK = 2000
# SQLite has no change notifications: poll this often. PostgreSQL wakes on NOTIFY and
# polls this rarely as a safety net.
SQLITE_POLL_SECONDS = 0.1
POSTGRES_POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
# How often an idle projector checks that Redis still holds what it wrote.
VERIFY_SECONDS = 1.0
# The heartbeat: renewed this often while the loop runs, gone this long after it stops.
BEAT_SECONDS = 1.0
BEAT_EXPIRES_MS = 10_000

# Fault injection points, in the order a page passes them (tests stop the projector there).
STEPS = ("before-apply", "mid-apply", "after-apply", "before-position", "after-position")

Fault = Callable[[str], None]


class DecodedPage(NamedTuple):
    """A page made ready in the reader thread: script arguments per customer."""

    customers: list[tuple[int, list[str | int]]]  # (customer id, its script's arguments)
    keys_ops: bytes | None
    generation: int  # the generation `commands` were encoded for
    commands: list[bytes]  # the page's scripts in the Redis protocol
    last: int  # the last position this page settles (before a poison event, if any)
    events: int
    poison: UnprojectableEventError | None


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


class ProjectionStoreError(Exception):
    """Redis refused a step (e.g. a key of the wrong type); the page is not recorded."""


def current_generation(client: redis.Redis, keys: Keys) -> int:
    """The generation reads are served from, created as 1 on first use."""
    client.set(keys.generation, "1", nx=True)
    value = client.get(keys.generation)
    return int(value) if value is not None else 1


class Projector:
    """Catch-up then live projection of one application's notification log into Redis."""

    def __init__(
        self,
        recorder: ApplicationRecorder,
        client: redis.Redis,
        keys: Keys,
        *,
        application_name: str = APPLICATION_NAME,
        generation: int | None = None,
        publish: bool = True,
        page_size: int = DEFAULT_PAGE_SIZE,
        chunk: int = DEFAULT_CHUNK,
        fault: Fault | None = None,
        on_page: Callable[[int, int], None] | None = None,
    ) -> None:
        """generation=None follows the current generation (and rebuilds' switches)."""
        self.recorder = recorder
        self._read = page_reader(recorder)
        self.client = client
        self.keys = keys
        self.application_name = application_name
        self.page_size = page_size
        self.chunk = chunk
        self._follow = generation is None
        self._publish = publish
        self._fault = fault
        self._on_page = on_page
        self._wake = threading.Event()
        self.blocked: UnprojectableEventError | None = None
        self.generation = 0
        self.tracking: RedisTrackingRecorder
        self.position = 0
        # While Redis is being repaired: the position to reach again, and since when.
        self.repair_target: int | None = None
        self._repair_started = 0.0
        self._rebuild_pending = False
        self._verified_at = float("-inf")
        # A page is being written and its position not yet recorded: if Redis turns out to
        # have lost data now, part of that page may have landed on what was left.
        self._page_unconfirmed = False
        self._beaten_at = float("-inf")
        # What this read model was given before, noted in the event store (a following
        # projector only: a rebuild's fills a new generation from nothing).
        self._watermark = Watermark(recorder, keys.prefix)
        self._floor = 0
        self._noted = 0
        apply_customer.load(client)
        apply_keys.load(client)
        self._use_generation(generation or current_generation(client, keys))
        if self._follow:
            self._floor = self._noted = self._watermark.read()

    # Public interface

    def notify(self) -> None:
        """Wake the live loop now (an append happened in this process)."""
        self._wake.set()

    def catch_up(self) -> int:
        """Apply everything recorded now; return the applied position.

        Raises UnprojectableEventError at a poison event (after applying what precedes it
        and recording it in the dead-letter list). A Redis found to hold less than it was
        given is repaired on the way by a replay (marked meanwhile); one that needs a
        rebuild raises ReadModelLostError, which the live loop carries out.
        """
        while True:
            try:
                return self._catch_up()
            except ReadModelLostError as lost:
                if lost.written_since:
                    raise
                self._start_repair(lost)

    def _catch_up(self) -> int:
        if self._follow:
            self._follow_generation()
        while True:
            generation = self.generation
            pages = Prefetch(self._read, self.position, self.page_size, self._decode)
            try:
                for page in pages:
                    self._project_page(page)
                    if self.generation != generation:
                        break  # a rebuild switched generations: read on from its position
                else:
                    return self.position
            finally:
                pages.close()

    def run(self, stop: threading.Event) -> None:
        """Catch up, then follow new events until stop is set."""
        listener = _PostgresListener.start_for(self.recorder, self._wake)
        poll = POSTGRES_POLL_SECONDS if listener else SQLITE_POLL_SECONDS
        backoff = 0.0
        last_problem = ""
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    if self._rebuild_pending:
                        self._rebuild_for_repair()
                    if time.monotonic() - self._verified_at >= VERIFY_SECONDS:
                        self.verify()
                    self.beat()
                    self.catch_up()
                    self.blocked = None
                    backoff, last_problem = 0.0, ""
                except ReadModelLostError as lost:
                    self._start_repair(lost)
                    continue
                except UnprojectableEventError as poison:
                    # Stopped until an operator skips it; look again now and then.
                    self.blocked = poison
                    backoff = max(backoff, 1.0)
                except Exception as error:  # a store is down: retry, never lose a page
                    problem = f"{type(error).__name__}: {error}"
                    self._verified_at = float("-inf")  # reconnected later: check first
                    if problem != last_problem:
                        logger.warning("projection paused, retrying: %s", problem)
                        last_problem = problem
                    backoff = min(max(backoff * 2, 0.2), MAX_BACKOFF_SECONDS)
                self._sleep(stop, max(poll, backoff))
        finally:
            if listener:
                listener.stop()

    # One page: decoded in the reader thread, applied here

    def _decode(self, page: Sequence[Row]) -> DecodedPage:
        """The page as ready-to-send script arguments; stops at a poison event."""
        by_customer: dict[int, list[CustomerChange]] = {}
        key_changes: list[KeyChange] = []
        last = page[-1][0]
        poison: UnprojectableEventError | None = None
        for position, topic, state in page:
            try:
                change = decode_row(position, topic, state)
            except UnprojectableEventError as error:
                if self._is_skipped(position):
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
        generation = self.generation
        commands = self._encode(generation, customers, keys_ops)
        return DecodedPage(customers, keys_ops, generation, commands, last, len(page), poison)

    def beat(self, *, every: float = BEAT_SECONDS) -> None:
        """Tell readers this projector runs, where it is and the store's head (lag)."""
        now = time.monotonic()
        if now - self._beaten_at < every:
            return
        self._beaten_at = now
        head = self.recorder.max_notification_id() or 0
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(
            self.keys.projector,
            mapping={
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "position": self.position,
                "head": head,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            },
        )
        pipe.pexpire(self.keys.projector, BEAT_EXPIRES_MS)
        pipe.execute()
        if self._follow and self.position > self._noted and not self.repair_target:
            self._watermark.write(self.position)  # what Redis holds now: a floor for later
            self._noted = self.position

    def verify(self) -> None:
        """Check that Redis still holds what this projector wrote; adopt a repair marker.

        Raises ReadModelLostError if it does not (nothing was written onto it since).
        """
        self._check_unchanged()
        marker = read_marker(self.client, self.keys)
        if marker is None:
            self.repair_target = None
        else:
            if self.repair_target is None:  # set before this process started, or by another
                self.repair_target, self._repair_started = marker.target, time.monotonic()
            if marker.rebuild is not None and self._follow and self.generation <= marker.rebuild:
                self._rebuild_pending = True  # one found earlier, here or elsewhere
            self._clear_if_repaired()
        self._verified_at = time.monotonic()

    def _check_unchanged(self) -> None:
        written = max(self.position, self._floor)
        if written == 0:
            return  # nothing recorded yet, so nothing to lose
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.keys.generation)
        pipe.hget(self.keys.tracking(self.generation), self.application_name)
        generation_raw, tracking_raw = pipe.execute()
        if self._follow and generation_raw is not None and int(generation_raw) > self.generation:
            return  # a rebuild switched generations; the page's record follows it
        found = int(tracking_raw or 0)
        if self._follow and generation_raw is not None and int(generation_raw) < self.generation:
            reason = (
                f"Redis serves generation {int(generation_raw)}, older than the "
                f"{self.generation} written (restored from a copy taken before a rebuild)"
            )
            # Readers have served the newer generation: only a newer one still can be.
            raise ReadModelLostError(found, written, reason, written_since=True)
        if self._follow and generation_raw is None:
            reason = "Redis holds no read model (restarted empty, or flushed)"
        elif found < written:
            reason = (
                f"Redis holds position {found}, below the {written} recorded "
                "(restarted from an older copy, or it lost writes)"
            )
        else:
            return
        raise ReadModelLostError(found, written, reason, written_since=self._page_unconfirmed)

    def _start_repair(self, lost: ReadModelLostError) -> None:
        target = max(lost.recorded, self.repair_target or 0)
        self._floor = 0  # the marker's target carries it from here
        rebuild = self.generation if lost.written_since and self._follow else None
        mark(self.client, self.keys, lost.reason, target, rebuild)
        if self.repair_target is None:
            self._repair_started = time.monotonic()
        self.repair_target = target
        if lost.written_since:
            logger.error(
                "read model lost data: %s; what is left cannot be replayed onto (a page "
                "landed on it, or readers served a newer generation), so it is rebuilt from "
                "the event store in a new generation; reads answer 503 until position %d "
                "is applied again",
                lost.reason,
                target,
            )
            self._rebuild_pending = True
            return
        logger.error(
            "read model lost data: %s; resuming from position %d, reads answer 503 until "
            "position %d is applied again",
            lost.reason,
            lost.found,
            target,
        )
        if self._follow:
            self.client.set(self.keys.generation, str(self.generation), nx=True)
        self.position = lost.found
        self._verified_at = time.monotonic()

    def _rebuild_for_repair(self) -> None:
        from projections.rebuild import rebuild  # rebuild drives a Projector itself

        marker = read_marker(self.client, self.keys)
        current = int(self.client.get(self.keys.generation) or 0)
        if marker is None or marker.rebuild is None or marker.rebuild < current:
            self._rebuild_pending = False  # another projector rebuilt it meanwhile
            return
        if current < marker.rebuild:
            # Flushed, or an older copy: the rebuild must land above every generation
            # readers have served, so it starts from the damaged one's number.
            self.client.set(self.keys.generation, str(marker.rebuild))
        result = rebuild(
            self.recorder, self.client, self.keys, application_name=self.application_name
        )
        self._rebuild_pending = False
        self._page_unconfirmed = False
        self._use_generation(result.new_generation)
        self._clear_if_repaired()

    def _clear_if_repaired(self) -> None:
        target = self.repair_target
        if target is None or self.position < target:
            return
        if clear_if_repaired(self.client, self.keys, self.position):
            logger.warning(
                "read model repaired: position %d applied again, %.1f s after the loss "
                "was found; reads are served again",
                self.position,
                time.monotonic() - self._repair_started,
            )
        self.repair_target = None

    def _project_page(self, page: DecodedPage) -> None:
        self._step("before-apply")
        self._apply(page)
        self._step("after-apply")
        if page.last > self.position:
            self._step("before-position")
            self._record_position(page.last)
            self._step("after-position")
        self._page_unconfirmed = False
        if self._on_page is not None:
            self._on_page(self.position, page.events)
        if page.poison is not None:
            self._dead_letter(page.poison)
            raise page.poison

    def _encode(
        self,
        generation: int,
        customers: list[tuple[int, list[str | int]]],
        keys_ops: bytes | None,
    ) -> list[bytes]:
        prefix = f"{self.keys.prefix}:g{generation}:c:"
        sha = apply_customer.sha
        commands = [
            _evalsha(sha, prefix + str(customer_id), *args) for customer_id, args in customers
        ]
        if keys_ops is not None:
            commands.append(_evalsha(apply_keys.sha, self.keys.api_keys(generation), keys_ops))
        return commands

    def _apply(self, page: DecodedPage) -> None:
        commands = page.commands
        if page.generation != self.generation:  # a switch since the page was prepared
            commands = self._encode(self.generation, page.customers, page.keys_ops)
        # Writing onto a Redis that lost data would leave guards ahead of what records hold.
        self._check_unchanged()
        self._page_unconfirmed = True
        for start in range(0, len(commands), self.chunk):
            if start:
                self._step("mid-apply")
            self._execute(commands[start : start + self.chunk])

    def _execute(self, commands: list[bytes]) -> None:
        for attempt in range(2):
            errors = self._send(commands)
            if not errors:
                return
            if attempt == 0 and all(isinstance(e, NoScriptError) for e in errors):
                # The server forgot the scripts (restart, SCRIPT FLUSH): load them and
                # send the chunk again; the guards make the repeat harmless.
                apply_customer.load(self.client)
                apply_keys.load(self.client)
                continue
            raise ProjectionStoreError(f"Redis refused a projection step: {errors[0]}")

    def _send(self, commands: list[bytes]) -> list[ResponseError]:
        """Send pre-encoded commands in one write and read every reply (a raw pipeline)."""
        pool = self.client.connection_pool
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

    def _record_position(self, position: int) -> None:
        try:
            self.tracking.advance(self.application_name, position, recorded=self.position)
        except TrackingRolledBackError as rolled_back:
            if self._follow and self._generation_switched():
                self._follow_generation()
                return
            reason = f"Redis lost data while a page was written: {rolled_back}"
            raise ReadModelLostError(
                rolled_back.found, self.position, reason, written_since=True
            ) from None
        except IntegrityError:
            # Another projector got further; its work and ours are the same (guarded).
            recorded = self.tracking.max_tracking_id(self.application_name) or 0
            self.position = max(self.position, recorded)
            return
        self.position = position
        pipe = self.client.pipeline(transaction=False)
        if self._publish:
            pipe.publish(self.keys.positions_channel, f"{self.generation}:{position}")
        if self._follow:
            pipe.get(self.keys.generation)
        results = pipe.execute()
        if self._follow and results and results[-1] is not None:
            generation = int(results[-1])
            if generation != self.generation:
                self._use_generation(generation)
        if self.repair_target is not None:
            self._clear_if_repaired()
        if self._follow:
            self.beat()  # throttled: at most once a second during a long catch-up

    # Generations

    def _follow_generation(self) -> int:
        if max(self.position, self._floor) and self.client.get(self.keys.generation) is None:
            self._check_unchanged()  # gone since we wrote: a loss, not a first start
        generation = current_generation(self.client, self.keys)
        if generation > self.generation:
            self._use_generation(generation)
        elif generation < self.generation:
            self._check_unchanged()  # went back: a restored copy, repaired from there
        return self.generation

    def _generation_switched(self) -> bool:
        value = self.client.get(self.keys.generation)
        return value is not None and int(value) > self.generation

    def _use_generation(self, generation: int) -> None:
        if self.generation:
            logger.info("projection now writes generation %d", generation)
        self.generation = generation
        self.tracking = RedisTrackingRecorder(self.client, self.keys, generation)
        self.position = self.tracking.max_tracking_id(self.application_name) or 0

    # Poison events

    def _is_skipped(self, position: int) -> bool:
        return bool(self.client.hexists(self.keys.skips, str(position)))

    def _dead_letter(self, poison: UnprojectableEventError) -> None:
        recorded = self.client.lrange(self.keys.dead_letters, 0, -1)
        if any(json.loads(entry).get("position") == poison.position for entry in recorded):
            return
        logger.error(
            "projection stopped at position %d (%s): %s; inspect it, then run "
            "`customers project --skip %d` to step over it",
            poison.position,
            poison.topic,
            poison.reason,
            poison.position,
        )
        entry = {
            "position": poison.position,
            "topic": poison.topic,
            "reason": poison.reason,
            "at": datetime.now(UTC).isoformat(timespec="microseconds"),
        }
        self.client.rpush(self.keys.dead_letters, json.dumps(entry))

    # Waiting

    def _step(self, name: str) -> None:
        if self._fault is not None:
            self._fault(name)

    def _sleep(self, stop: threading.Event, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._wake.wait(min(remaining, 0.05)):
                return


class _PostgresListener:
    """Sets an event on every NOTIFY the library's PostgreSQL recorder sends on insert."""

    def __init__(self, recorder: Any, wake: threading.Event) -> None:
        self._recorder = recorder
        self._wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="projector-listen", daemon=True)

    @classmethod
    def start_for(
        cls, recorder: ApplicationRecorder, wake: threading.Event
    ) -> _PostgresListener | None:
        try:
            from eventsourcing.postgres import PostgresApplicationRecorder
        except ImportError:  # pragma: no cover - psycopg is a dependency
            return None
        if not isinstance(recorder, PostgresApplicationRecorder):
            return None
        listener = cls(recorder, wake)
        listener._thread.start()
        return listener

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _listen(self) -> None:
        from psycopg.sql import SQL, Identifier

        while not self._stopped.is_set():
            try:
                with self._recorder.datastore.get_connection() as conn:
                    conn.execute(SQL("LISTEN {0}").format(Identifier(self._recorder.channel_name)))
                    try:
                        while not self._stopped.is_set():
                            for _ in conn.notifies(timeout=0.2, stop_after=1):
                                self._wake.set()
                    finally:
                        conn.execute("UNLISTEN *")
            except Exception as error:  # the poll bound covers us meanwhile
                logger.debug("LISTEN connection lost (%s); retrying", error)
                self._stopped.wait(1.0)


def record_skip(client: redis.Redis, keys: Keys, position: int, operator: str) -> dict[str, Any]:
    """Record an operator's decision to step over a dead-lettered event; returns the record.

    Raises ValueError when the position is not an unskipped dead letter.
    """
    letters = [json.loads(entry) for entry in client.lrange(keys.dead_letters, 0, -1)]
    letter = next((entry for entry in letters if entry.get("position") == position), None)
    if letter is None:
        raise ValueError(f"position {position} is not in the dead-letter list")
    if client.hexists(keys.skips, str(position)):
        raise ValueError(f"position {position} is skipped already")
    decision = {
        "position": position,
        "topic": letter.get("topic"),
        "reason": letter.get("reason"),
        "skipped_by": operator,
        "skipped_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    if not client.hsetnx(keys.skips, str(position), json.dumps(decision)):
        raise ValueError(f"position {position} is skipped already")
    logger.warning("operator %s skipped the event at position %d", operator, position)
    return decision
