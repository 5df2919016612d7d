"""`customers --help` speaks to operators about what the tool does, not about its insides."""

from __future__ import annotations

from typer.testing import CliRunner

from runtime.cli import app


def test_the_top_level_help_says_what_the_tool_does() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    summary = " ".join(result.stdout.split())
    assert "Customers and orders, event-sourced" in summary
    assert "composition root" not in summary
