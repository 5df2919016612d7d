"""`customers project | dead-letters | rebuild | audit`: the read model's operations.

The audit's command is in runtime/cli_audit.py; the projection and the stores are imported
by the commands that use them, so --help and the other commands start without them.
"""

from __future__ import annotations

import getpass
import json
import signal
import threading
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from runtime.cli_audit import audit_command
from runtime.cli_common import err, fail, load_settings, open_read_model, progress_bar

if TYPE_CHECKING:
    from runtime.container import Container

MAX_WORKERS = 16  # one slice each at most (projections/read_model.py SLICES)


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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="Projector processes to run here; on PostgreSQL every projector, here or on "
            "other machines, shares the partitions with the others",
        ),
    ] = 1,
) -> None:
    """Project the event store into the Redis read model: catch up, then follow live.

    With --skip N: record the decision to step over dead letter N and exit (a running
    projector takes it up within a second), unless --then-project.
    """
    from projections.dead_letters import record_skip
    from runtime.single_projector import sqlite_path

    if workers > 1:
        if skip is not None:
            raise fail("--skip records a decision and exits: run it without --workers")
        if sqlite_path(load_settings().EVENT_STORE_URL) is not None:
            raise fail(
                "--workers: SQLite has one projector; several workers share the "
                "projection through a PostgreSQL event store (EVENT_STORE_URL)"
            )
        from runtime.worker_processes import run_workers

        raise typer.Exit(run_workers(workers, page_size, lambda line: err.print(line)))
    container = open_read_model()
    try:
        if skip is not None:
            try:
                record_skip(container.redis, container.redis_keys, skip, getpass.getuser())
            except ValueError as error:
                raise fail(str(error)) from None
            err.print(f"skipping the event at position {skip} (recorded)", highlight=False)
            if not then_project:
                return
        _project_live(container, page_size)
    finally:
        container.close()


def _project_live(container: Container, page_size: int | None) -> None:
    """Run this process's projector until SIGTERM/SIGINT: a member of the workers' group
    on PostgreSQL, the only projector on SQLite."""
    from eventsourcing.postgres import PostgresApplicationRecorder

    from projections.generation import LayoutMismatchError
    from projections.live_loop import run_live
    from projections.projector import DEFAULT_PAGE_SIZE, Projector
    from projections.worker_group import WorkerGroup, WorkerGroupError
    from runtime.single_projector import ProjectorRunningError, hold_projector_lock, sqlite_path

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    recorder = container.write_service.recorder
    group: WorkerGroup | None = None
    lock = None
    try:
        if isinstance(recorder, PostgresApplicationRecorder):
            group = WorkerGroup.for_recorder(recorder, container.redis_keys.prefix)
            try:
                group.start()
            except WorkerGroupError as error:
                raise fail(f"EVENT_STORE_URL: {error}") from None
        else:
            database = sqlite_path(container.settings.EVENT_STORE_URL)
            if database is not None:
                try:
                    lock = hold_projector_lock(database)
                except ProjectorRunningError as error:
                    raise fail(str(error)) from None
        try:
            projector = Projector(recorder, container.redis, container.redis_keys, share=group)
        except LayoutMismatchError as error:
            raise fail(f"REDIS_URL: {error}") from None
        projector.page_size = page_size or DEFAULT_PAGE_SIZE
        if group is not None:
            group.on_change = projector.notify  # slices came or went: look at once
        share = (
            f" as one of the workers ({len(group.members)} now; slices {sorted(group.offered())})"
            if group is not None
            else ""
        )
        err.print(
            f"projecting{share} from position {projector.position} into generation "
            f"{projector.generation}; stop with Ctrl-C",
            highlight=False,
        )
        run_live(projector, stop)
    finally:
        if group is not None:
            group.stop()
        if lock is not None:
            lock.close()


def dead_letters_command(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List the events the projection stopped at: position, topic, reason, when, skipped."""
    from projections.dead_letters import dead_letters

    container = open_read_model()
    try:
        letters = dead_letters(container.redis, container.redis_keys)
    finally:
        container.close()
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


def rebuild_command(
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="Processes filling the new generation, each a share of the partitions",
        ),
    ] = 1,
) -> None:
    """Rebuild the read model into a fresh generation while the current one serves reads."""
    from redis.exceptions import RedisError

    from contract.application import APPLICATION_NAME
    from projections.event_decoding import UnprojectableEventError
    from projections.page_commands import ProjectionStoreError
    from projections.rebuild import RebuildError, fill_slices, rebuild
    from projections.tracking import RedisTrackingRecorder
    from runtime.rebuild_workers import fill_with_workers

    container = open_read_model()
    recorder = container.write_service.recorder
    started = time.monotonic()
    try:
        with progress_bar(rate=True, transient=False) as progress:
            task = progress.add_task("rebuilding", total=None, rate=0.0)

            def report(position: int, head: int, events: int) -> None:
                rate = events / max(time.monotonic() - started, 1e-9)
                progress.update(task, completed=position, total=head, rate=rate)

            def applied(generation: int) -> int:
                tracking = RedisTrackingRecorder(container.redis, container.redis_keys, generation)
                position = tracking.max_tracking_id(APPLICATION_NAME) or 0
                report(position, max(position, recorder.max_notification_id() or 0), position)
                return position

            def fill_own(generation: int, slices: frozenset[int]) -> int:
                def on_page(_: int, __: int) -> None:
                    applied(generation)

                return fill_slices(
                    recorder, container.redis, container.redis_keys, generation, slices,
                    on_page=on_page,
                )  # fmt: skip

            result = rebuild(
                recorder,
                container.redis,
                container.redis_keys,
                progress=report,
                fill=fill_with_workers(workers, None, fill_own, applied) if workers > 1 else None,
            )
    except (RebuildError, ProjectionStoreError, UnprojectableEventError) as error:
        raise fail(f"{error}; the old generation still serves") from None
    except RedisError as error:
        message = f"Redis failed during the rebuild ({error}); the old generation still serves"
        raise fail(message) from None
    finally:
        container.close()
    rate = result.events / max(result.seconds, 1e-9)
    err.print(
        f"rebuilt generation {result.new_generation} from {result.events} events in "
        f"{result.seconds:.1f} s ({rate:,.0f} events/s); serving it from position "
        f"{result.position}; generation {result.old_generation} dropped",
        highlight=False,
    )


def rebuild_worker(
    generation: Annotated[int, typer.Option(min=1)],
    slices: Annotated[str, typer.Option(help="Comma-separated slice numbers")],
    page_size: Annotated[int | None, typer.Option(min=1, max=100_000)] = None,
) -> None:
    """One of `rebuild --workers`' processes: fill its slices of a new generation."""
    from projections.event_decoding import UnprojectableEventError
    from projections.page_commands import ProjectionStoreError
    from projections.projector import DEFAULT_PAGE_SIZE
    from projections.rebuild import fill_slices

    container = open_read_model()
    try:
        events = fill_slices(
            container.write_service.recorder,
            container.redis,
            container.redis_keys,
            generation,
            frozenset(int(s) for s in slices.split(",")),
            page_size=page_size or DEFAULT_PAGE_SIZE,
        )
    except (ProjectionStoreError, UnprojectableEventError) as error:
        raise fail(str(error)) from None
    finally:
        container.close()
    print(events)  # read by the rebuild that started this process


def register(app: typer.Typer) -> None:
    """Add these commands to the `customers` app."""
    app.command("project")(project)
    app.command("rebuild")(rebuild_command)
    app.command("rebuild-worker", hidden=True)(rebuild_worker)
    app.command("audit")(audit_command)
    app.command("dead-letters")(dead_letters_command)
