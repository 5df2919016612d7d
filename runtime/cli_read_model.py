"""What the read model's commands share: the stores opened with Redis checked, one-line errors."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer

# The stores are imported by the commands that use them: --help starts without them.
if TYPE_CHECKING:
    from runtime.container import Container


def fail(message: str) -> typer.Exit:
    from runtime.cli import fail

    return fail(message)


def open_read_model() -> Container:
    """The container, logging set up, its Redis answering (else a one-line error)."""
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
