"""`customers migrate --to URL`: copy this event store into another (runtime/store_migration.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)


def migrate_command(
    to: Annotated[
        str, typer.Option("--to", help="The target store, e.g. postgresql://user:pass@host/db")
    ],
) -> None:
    """Copy every event of EVENT_STORE_URL into another store, in order; run it again to
    resume or to catch up. Stop the writers first; afterwards point EVENT_STORE_URL at the
    target and run `customers rebuild` and `customers audit`."""
    from runtime.cli_common import fail, load_settings
    from runtime.event_store import one_line, open_customer_service, why_unreachable
    from runtime.settings import event_store_env
    from runtime.store_migration import MigrationError, migrate

    settings = load_settings()
    if to == settings.EVENT_STORE_URL:
        raise fail("--to: the target is EVENT_STORE_URL itself")
    try:
        event_store_env(to)
    except ValueError as error:
        raise fail(f"--to: {error}") from None
    source = open_customer_service(settings.EVENT_STORE_URL)
    try:
        try:
            target = open_customer_service(to)
        except Exception as error:  # one line naming the option, as for the variables
            reason = why_unreachable(to) or one_line(error)
            raise fail(f"--to: cannot open the store ({reason})") from None
        try:
            told: set[int] = set()

            def tell(position: int, head: int) -> None:
                tenth = position * 10 // max(head, 1)
                if tenth not in told:
                    told.add(tenth)
                    err.print(f"migrate: position {position:,} of {head:,}", highlight=False)

            result = migrate(source.recorder, target.recorder, progress=tell)
        except MigrationError as error:
            raise fail(str(error)) from None
        finally:
            target.close()
    finally:
        source.close()
    resumed = f", resumed after position {result.resumed_after:,}" if result.resumed_after else ""
    err.print(
        f"copied {result.copied:,} events{resumed}; the source ends at position "
        f"{result.source_head:,}, the target at {result.target_head:,}. Next: stop the "
        "writers if they are not, run this again to catch up, point EVENT_STORE_URL at "
        "the target, then `customers rebuild` and `customers audit`.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("migrate")(migrate_command)
