"""`customers project | rebuild | audit`: the read model's operations."""

from __future__ import annotations

import getpass
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# The projection and the stores are imported by the commands that use them: --help and
# the other commands start without them.
if TYPE_CHECKING:
    from runtime.container import Container

err = Console(stderr=True, soft_wrap=True)
MAX_ROWS = 50


def _fail(message: str) -> typer.Exit:
    from runtime.cli import fail

    return fail(message)


def _container() -> Container:
    from runtime.cli import open_container, redis_unusable

    container = open_container()
    logging.basicConfig(
        level=container.settings.LOG_LEVEL.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        container.redis.ping()
    except Exception as error:  # unreachable or not startable: one line, no traceback
        container.close()
        raise redis_unusable(container, error) from None
    return container


def project(
    skip: Annotated[
        int | None,
        typer.Option(help="Record an operator's decision to step over this dead-lettered event"),
    ] = None,
    page_size: Annotated[
        int | None,
        typer.Option(min=1, max=100_000, help="Events read and applied per page [default: 5000]"),
    ] = None,
    then_project: Annotated[
        bool, typer.Option("--then-project", help="With --skip: go on projecting afterwards")
    ] = False,
) -> None:
    """Project the event store into the Redis read model: catch up, then follow live.

    With --skip N: record the decision to step over dead letter N and exit (a running
    projector takes it up within a second), unless --then-project.
    """
    from projections.dead_letters import record_skip
    from projections.live_loop import run_live
    from projections.projector import DEFAULT_PAGE_SIZE

    container = _container()
    try:
        if skip is not None:
            try:
                record_skip(container.redis, container.redis_keys, skip, getpass.getuser())
            except ValueError as error:
                raise _fail(str(error)) from None
            err.print(f"skipping the event at position {skip} (recorded)", highlight=False)
            if not then_project:
                return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        projector = container.projector
        projector.page_size = page_size or DEFAULT_PAGE_SIZE
        err.print(
            f"projecting from position {projector.position} into generation "
            f"{projector.generation}; stop with Ctrl-C",
            highlight=False,
        )
        run_live(projector, stop)
    finally:
        container.close()


def dead_letters_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List the events the projection stopped at: position, topic, reason, when, skipped."""
    container = _container()
    try:
        letters = [
            json.loads(entry)
            for entry in container.redis.lrange(container.redis_keys.dead_letters, 0, -1)
        ]
        skips = {
            int(position): json.loads(decision)
            for position, decision in container.redis.hgetall(container.redis_keys.skips).items()
        }
    finally:
        container.close()
    for letter in letters:
        decision = skips.get(letter.get("position"))
        letter["skipped_by"] = None if decision is None else decision.get("skipped_by")
        letter["skipped_at"] = None if decision is None else decision.get("skipped_at")
    if as_json:
        for letter in letters:
            typer.echo(json.dumps(letter))
        return
    if not letters:
        typer.echo("no dead letters: every event was projected")
        return
    table = Table("position", "topic", "reason", "when", "skipped")
    for letter in letters:
        skipped = letter["skipped_by"] and f"by {letter['skipped_by']} at {letter['skipped_at']}"
        table.add_row(
            str(letter.get("position")),
            str(letter.get("topic")),
            str(letter.get("reason")),
            str(letter.get("at")),
            skipped or "no: run `customers project --skip POSITION`",
        )
    Console().print(table)


def rebuild_command() -> None:
    """Rebuild the read model into a fresh generation while the current one serves reads."""
    from redis.exceptions import RedisError

    from projections.event_decoding import UnprojectableEventError
    from projections.page_commands import ProjectionStoreError
    from projections.rebuild import RebuildError, rebuild

    container = _container()
    started = time.monotonic()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>10,.0f} events/s"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task("rebuilding", total=None, rate=0.0)

            def report(position: int, head: int, events: int) -> None:
                rate = events / max(time.monotonic() - started, 1e-9)
                progress.update(task, completed=position, total=head, rate=rate)

            result = rebuild(
                container.write_service.recorder,
                container.redis,
                container.redis_keys,
                progress=report,
            )
    except (RebuildError, ProjectionStoreError, UnprojectableEventError) as error:
        raise _fail(f"{error}; the old generation still serves") from None
    except RedisError as error:
        message = f"Redis failed during the rebuild ({error}); the old generation still serves"
        raise _fail(message) from None
    finally:
        container.close()
    rate = result.events / max(result.seconds, 1e-9)
    err.print(
        f"rebuilt generation {result.new_generation} from {result.events} events in "
        f"{result.seconds:.1f} s ({rate:,.0f} events/s); serving it from position "
        f"{result.position}; generation {result.old_generation} dropped",
        highlight=False,
    )


def audit_command(
    customer: Annotated[int | None, typer.Option(help="Only this customer id")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Print the state at this ISO 8601 time instead")
    ] = None,
    position: Annotated[
        int | None, typer.Option(help="Print the state at this event store position instead")
    ] = None,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="An event store with no events is clean")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="The report as one JSON object on stdout")
    ] = False,
) -> None:
    """Replay the event store independently of Redis and compare it with the read model.

    Exits 1 on any difference, and on an event store with no events (most likely the
    wrong EVENT_STORE_URL or DATA_DIR) unless --allow-empty. With --as-of or --position,
    prints the historical state (JSON, one customer per line) instead of comparing.
    """
    if as_of is not None and position is not None:
        raise _fail("give either --as-of or --position, not both")
    if position is not None and position < 0:
        raise _fail("--position must be 0 or more")
    if customer is not None and customer <= 0:
        raise _fail("--customer must be a positive integer")
    moment = _parse_moment(as_of) if as_of is not None else None
    from projections.audit import audit as run_audit
    from projections.audit import history, skipped_positions

    container = _container()
    try:
        recorder = container.write_service.recorder
        head = recorder.max_notification_id() or 0
        if head == 0 and not allow_empty:
            typer.echo(
                f"audit: the event store at {container.settings.EVENT_STORE_URL} holds no "
                "events; check EVENT_STORE_URL and DATA_DIR (--allow-empty if that is right)",
                err=True,
            )
            raise typer.Exit(code=1)
        if position is not None and position > head:
            raise _fail(f"--position {position} is beyond the event store's last position {head}")
        if moment is not None or position is not None:
            skips = skipped_positions(container.redis, container.redis_keys)
            documents = history(
                recorder, skips, customer_id=customer, position=position, as_of=moment
            )
            if customer is not None and not documents:
                raise _fail(f"customer {customer} did not exist at that point")
            for document in documents.values():
                typer.echo(orjson.dumps(document).decode())
            return
        with _audit_progress() as progress:
            report = run_audit(
                recorder, container.redis, container.redis_keys, customer, progress=progress
            )
    finally:
        container.close()
    if as_json:
        typer.echo(orjson.dumps(report.as_json()).decode())
        if not report.clean:
            raise typer.Exit(code=1)
        return
    if customer is not None and report.customers == 0:
        raise _fail(
            f"customer {customer} is neither in the event store (up to position "
            f"{report.position}) nor in the read model"
        )
    console = Console()
    if report.unprojectable:
        console.print(
            f"note: {len(report.unprojectable)} unprojectable events left out "
            f"(positions {', '.join(map(str, report.unprojectable[:10]))})",
            highlight=False,
        )
    if report.clean:
        console.print(
            f"audit clean: {report.customers} customers match the event store at position "
            f"{report.position} (generation {report.generation})",
            highlight=False,
        )
        return
    table = Table("customer", "field", "event store", "read model", title="differences")
    for difference in report.differences[:MAX_ROWS]:
        table.add_row(
            str(difference.customer_id),
            difference.field,
            _show(difference.expected),
            _show(difference.actual),
        )
    console.print(table)
    console.print(
        f"audit found {report.differences_found} differences in {report.customers} customers "
        f"at position {report.position} (generation {report.generation})",
        highlight=False,
    )
    raise typer.Exit(code=1)


@contextmanager
def _audit_progress() -> Iterator[Callable[[int, int, int, int], None]]:
    """A progress bar on a terminal; otherwise a plain line at each tenth of the log."""
    if err.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("auditing", total=None)

            def show(share: int, shares: int, position: int, upto: int) -> None:
                label = "auditing" if shares == 1 else f"auditing, pass {share}/{shares}"
                bar.update(task, description=label, completed=position, total=upto)

            yield show
        return
    told: set[tuple[int, int]] = set()

    def tell(share: int, shares: int, position: int, upto: int) -> None:
        tenth = position * 10 // max(upto, 1)
        if (share, tenth) not in told:
            told.add((share, tenth))
            err.print(
                f"audit: pass {share}/{shares}, position {position:,} of {upto:,}",
                highlight=False,
            )

    yield tell


def _parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--as-of {text!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise _fail("--as-of needs a timezone, e.g. 2026-01-31T12:00:00Z")
    return moment


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def register(app: typer.Typer) -> None:
    """Add these commands to the `customers` app."""
    app.command("project")(project)
    app.command("rebuild")(rebuild_command)
    app.command("audit")(audit_command)
    app.command("dead-letters")(dead_letters_command)
