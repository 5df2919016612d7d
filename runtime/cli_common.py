"""What the commands share: settings and stores opened with one-line errors, the error printer.

Every `runtime/cli_*` module imports from here and `runtime/cli.py` only assembles them,
so no command module imports the entry point back.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import typer
from rich.console import Console

# Settings, stores and the framework are imported where a command needs them: --help
# starts without them.
if TYPE_CHECKING:
    from rich.progress import Progress

    from runtime.container import Container
    from runtime.settings import Settings

err = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", highlight=False, markup=False)
    return typer.Exit(code=2)


def load_settings() -> Settings:
    """Settings from the environment; a bad value is one line naming the variable."""
    from pydantic import ValidationError

    from runtime.settings import Settings, library_variables_set

    ignored = library_variables_set(dict(os.environ))
    if ignored:
        raise fail(
            f"{ignored[0]}: not supported: the event store is configured by EVENT_STORE_URL "
            "alone (the projector reads stored events as this service writes them); unset it"
        )
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        if not first["loc"]:  # a check across variables names its variable itself
            raise fail(message) from None
        variable = ".".join(str(part) for part in first["loc"])
        raise fail(f"{variable}: {message}") from None


def open_container(settings: Settings | None = None) -> Container:
    if settings is None:  # first: a bad value is told before the stores' imports
        settings = load_settings()

    from runtime.container import Container
    from runtime.event_store import one_line, why_unreachable

    try:
        return Container(settings)
    except Exception as error:  # a store that cannot be opened is a one-line error
        reason = why_unreachable(settings.EVENT_STORE_URL) or one_line(error)
        raise fail(f"EVENT_STORE_URL: cannot open the event store ({reason})") from None


def redis_unusable(container: Container, error: Exception) -> typer.Exit:
    """The one-line error for a Redis that cannot be used, naming the variable at fault."""
    if container.settings.REDIS_URL is None:  # the embedded one, whose files are in DATA_DIR
        return fail(f"DATA_DIR: cannot start the embedded Redis (REDIS_URL is unset): {error}")
    return fail(f"REDIS_URL: cannot reach Redis ({error})")


def open_read_model() -> Container:
    """The container, logging set up, its Redis answering (else a one-line error)."""
    container = open_container()
    logging.basicConfig(
        level=container.settings.LOG_LEVEL.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        container.start_redis()
        container.redis.ping()
    except Exception as error:  # unreachable or not startable: one line, no traceback
        container.close()
        raise redis_unusable(container, error) from None
    return container


def progress_bar(*, rate: bool, transient: bool) -> Progress:
    """A bar on stderr: what, how far, of how much (events/s if `rate`), time left."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if rate:
        columns.append(TextColumn("{task.fields[rate]:>10,.0f} events/s"))
    columns.append(TimeRemainingColumn())
    return Progress(*columns, console=err, transient=transient)
