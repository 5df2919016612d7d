"""The `customers` command line: thin entry points over the composition root."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from edge.access_policy import ROLES
from runtime.cli_common import err, fail, open_container
from runtime.cli_demo import demo
from runtime.cli_migrate import register as register_migrate_command
from runtime.cli_projection import register as register_projection_commands
from runtime.cli_serve import register as register_serve_commands

# Settings, stores and the framework are imported where a command needs them: --help and
# the key commands then start in a fraction of a second.
if TYPE_CHECKING:
    pass

HELP = (
    "Customers and orders, event-sourced: serve the APIs, project the read model, "
    "rebuild and audit it, and manage API keys."
)
app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP)
ROLE_CHOICES = f"{', '.join(ROLES[:-1])} or {ROLES[-1]}"


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"customers {version('customers-read-model')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    pass


tokens = typer.Typer(no_args_is_help=True, help="Create, list and revoke API keys.")
app.add_typer(tokens, name="tokens")
app.command("demo")(demo)
register_projection_commands(app)
register_serve_commands(app)
register_migrate_command(app)


@tokens.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help=ROLE_CHOICES)],
    name: Annotated[str, typer.Option(help="A unique name for the key's holder")],
) -> None:
    """Create a key and print it once, alone on stdout; only its hash is stored."""
    if role not in ROLES:
        raise fail(f"--role must be {ROLE_CHOICES}")
    if not name.strip() or len(name) > 150:
        raise fail("--name must be 1 to 150 characters")
    from write_side.errors import ApiKeyNameTakenError

    container = open_container()
    try:
        issued = container.write_service.issue_api_key(name.strip(), role)
    except ApiKeyNameTakenError:
        raise fail(f"a key named {name!r} exists already (names are never reused)") from None
    finally:
        container.close()
    sys.stdout.write(issued.key + "\n")


@tokens.command("list")
def tokens_list() -> None:
    """List keys by name, role and state; never the keys themselves."""
    from rich.table import Table

    container = open_container()
    try:
        entries, _ = container.write_service.api_key_entries()
    finally:
        container.close()
    table = Table("name", "role", "state", "issued")
    for entry in sorted(entries, key=lambda e: e.issued_at):
        state = "revoked" if entry.revoked else "active"
        table.add_row(entry.name, entry.role, state, entry.issued_at.isoformat())
    Console().print(table)


@tokens.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="The key's name")]) -> None:
    """Revoke a key; every process stops accepting it within a second."""
    from write_side.domain.api_key import ApiKeyRevokedError
    from write_side.errors import ApiKeyNotFoundError

    container = open_container()
    try:
        container.write_service.revoke_api_key(name)
    except ApiKeyNotFoundError:
        raise fail(f"no key is named {name!r}") from None
    except ApiKeyRevokedError:
        raise fail(f"the key {name!r} is revoked already") from None
    finally:
        container.close()
    err.print(f"revoked {name}", highlight=False, markup=False)


def main() -> None:
    try:
        app()
    except Exception as error:
        # Redis failing in the middle of a command (gone, or a cluster node down or moving
        # slots) is one line, like every other store failure; anything else is a bug.
        if not type(error).__module__.startswith("redis."):
            raise
        from runtime.event_store import one_line

        err.print(f"error: Redis failed: {type(error).__name__}: {one_line(error)}", markup=False)
        raise SystemExit(2) from None
