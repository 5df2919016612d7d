"""`customers --help` speaks to operators about what the tool does, not about its insides."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.settings import Settings


def test_the_top_level_help_says_what_the_tool_does() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    summary = " ".join(result.stdout.split())
    assert "Customers and orders, event-sourced" in summary
    assert "composition root" not in summary


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"customers {version('customers-read-model')}"


@pytest.mark.parametrize("command", ["serve", "read-api", "write-api"])
def test_serving_commands_list_every_variable_they_read(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    for variable in Settings.model_fields:
        assert variable in result.stdout, variable


def test_help_and_key_commands_load_no_web_framework_or_read_model_client() -> None:
    # What made `--help` take 2-8 s: every command's dependencies imported up front.
    probe = (
        "import sys; from runtime.cli import app; "
        "from typer.testing import CliRunner; CliRunner().invoke(app, ['--help']); "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'redis', 'psycopg', 'eventsourcing') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_creating_a_key_loads_the_event_store_but_not_the_web_framework(tmp_path: Path) -> None:
    probe = (
        "import sys; from runtime.cli import main; "
        "sys.argv = ['customers', 'tokens', 'create', '--role', 'staff', '--name', 'probe']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'redis') if m in sys.modules), "
        "file=sys.stderr)"
    )
    env = {**os.environ, "DATA_DIR": str(tmp_path), "EVENT_STORE_URL": ""}
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert len(done.stdout.strip()) >= 40  # the key, alone on stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"
