"""`customers audit`: the read model compared with an independent replay, or shown as of then."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from runtime.cli_common import err, fail, open_read_model, progress_bar

MAX_ROWS = 50  # differences shown in the table


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
        raise fail("give either --as-of or --position, not both")
    if position is not None and position < 0:
        raise fail("--position must be 0 or more")
    if customer is not None and customer <= 0:
        raise fail("--customer must be a positive integer")
    moment = _parse_moment(as_of) if as_of is not None else None
    from projections.audit import audit as run_audit
    from projections.dead_letters import skipped_positions
    from projections.replay import history

    container = open_read_model()
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
            raise fail(f"--position {position} is beyond the event store's last position {head}")
        if moment is not None or position is not None:
            skips = skipped_positions(container.redis, container.redis_keys)
            documents = history(
                recorder, skips, customer_id=customer, position=position, as_of=moment
            )
            if customer is not None and not documents:
                raise fail(f"customer {customer} did not exist at that point")
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
        raise fail(
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
        with progress_bar(rate=False, transient=True) as bar:
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
        raise fail(f"--as-of {text!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise fail("--as-of needs a timezone, e.g. 2026-01-31T12:00:00Z")
    return moment


def _show(value: Any) -> str:
    return "null" if value is None else str(value)
