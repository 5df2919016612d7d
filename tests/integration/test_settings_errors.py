"""A bad configuration value stops the CLI with one line naming the variable, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.cli import app as cli
from runtime.settings import Settings, event_store_env
from tests.support.valkey_process import ValkeyProcess
from write_side.store_adapter.options import libpq_options

PROJECT_ROOT = Path(__file__).resolve().parents[2]


BAD_VALUES = [
    ("EVENT_STORE_URL", "mysql://db/events"),
    ("PORT", "eighty"),
    ("REDIS_URL", "http://cache:6379"),
    ("LOG_LEVEL", "loud"),  # was a traceback from the logging setup of serve and audit
]
MORE_BAD_VALUES = [
    ("EVENT_STORE_URL", "postgresql://db:port/events"),
    ("EVENT_STORE_URL", "postgresql://db/events?pool_size=many"),
    ("PORT", "70000"),
    ("PORT", "0"),
    ("REDIS_URL", "redis://"),
]


def run_customers(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`customers ARGS` as a real process, so an uncaught error would show its traceback."""
    return finished(start_customers(tmp_path, *args, **variables))


def start_customers(tmp_path: Path, *args: str, **variables: str) -> subprocess.Popen[str]:
    """`customers ARGS` started, for a test that runs several at once (see `finished`)."""
    env = {
        **{name: text for name, text in os.environ.items() if name != "REDIS_URL"},
        "EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.sqlite'}",
        "DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(PROJECT_ROOT),
        **variables,
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from runtime.cli import main; main()", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """What a started `customers` printed and returned once it exits (within 60 s)."""
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def assert_one_line_naming(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {variable}: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_a_bad_value_fails_tokens_list_with_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    result = run_customers(tmp_path, "tokens", "list", **{variable: value})
    assert_one_line_naming(result, variable)


def test_serve_on_a_busy_port_is_one_line_naming_port(tmp_path: Path) -> None:
    # Someone else listens on the port first.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_customers(tmp_path, "serve", PORT=str(port))
    assert_one_line_naming(result, "PORT")
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    # Nothing was started before the refusal: no embedded Redis files, no admin key.
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("command", ["write-api", "read-api"])
def test_an_address_that_cannot_be_listened_on_is_one_line_naming_host(
    tmp_path: Path, command: str
) -> None:
    result = run_customers(tmp_path, command, HOST="999.1.1.1")
    assert_one_line_naming(result, "HOST")


@pytest.mark.parametrize(("variable", "value"), MORE_BAD_VALUES)
def test_other_bad_values_are_also_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {"EVENT_STORE_URL": f"sqlite:///{tmp_path / 'events.sqlite'}", variable: value}
    result = CliRunner().invoke(cli, ["tokens", "list"], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {variable}: ")


def test_the_default_store_is_a_sqlite_file_under_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENT_STORE_URL", raising=False)
    monkeypatch.delenv("DATA_DIR", raising=False)
    env = event_store_env(Settings().EVENT_STORE_URL)
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert Path(env["SQLITE_DBNAME"]) == Path("data/events.sqlite")
    assert (tmp_path / "data").is_dir()


def test_the_default_store_follows_data_dir_wherever_the_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run elsewhere, a command used to make an empty ./data store and call it clean.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENT_STORE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "kept"))
    env = event_store_env(Settings().EVENT_STORE_URL)
    assert env["SQLITE_DBNAME"] == str(tmp_path / "kept" / "events.sqlite")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmod=require", "unknown parameter 'sslmod'"),
        ("pool_size=5&ssl=true", "unknown parameter 'ssl'"),
        ("sslmode=required", "sslmode must be one of"),
    ],
)
def test_an_unknown_or_misspelt_store_url_parameter_is_refused_by_name(
    query: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        event_store_env(f"postgresql://db/events?{query}")


def test_libpq_parameters_of_the_store_url_are_kept() -> None:
    env = event_store_env(
        "postgresql://db/events?sslmode=verify-full&sslrootcert=/ca.pem&application_name=api"
    )
    assert libpq_options(env) == {
        "sslmode": "verify-full",
        "sslrootcert": "/ca.pem",
        "application_name": "api",
    }


@pytest.mark.parametrize(
    "variable", ["COMPRESSOR_TOPIC", "CIPHER_TOPIC", "POSTGRES_SCHEMA", "PERSISTENCE_MODULE"]
)
def test_a_library_setting_the_service_does_not_honour_is_refused_by_name(
    tmp_path: Path, variable: str
) -> None:
    # Compressed events made the projector dead-letter event 1; now nothing starts.
    result = run_customers(tmp_path, "tokens", "list", **{variable: "anything"})
    assert_one_line_naming(result, variable)
    assert not (tmp_path / "events.sqlite").exists()


def test_an_absolute_sqlite_path_keeps_its_leading_slash(tmp_path: Path) -> None:
    env = event_store_env(f"sqlite:///{tmp_path}/store/events.sqlite")
    assert env["SQLITE_DBNAME"] == f"{tmp_path}/store/events.sqlite"


def test_a_postgresql_url_maps_to_the_library_settings() -> None:
    env = event_store_env(
        "postgresql://writer:s%40cret@db.internal:6543/events?schema=customers&pool_size=20"
    )
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("db.internal", "6543")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("writer", "s@cret")
    assert (env["POSTGRES_DBNAME"], env["POSTGRES_SCHEMA"]) == ("events", "customers")
    assert env["POSTGRES_POOL_SIZE"] == "20"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite://host/events.sqlite",
        "postgresql://db.internal",
        "postgresql:///events",
        "postgresql://db:99999/events",
        "postgresql://db/events?connect_timeout=0",
        "events.sqlite",
    ],
)
def test_an_unusable_store_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"expected|port|must be"):
        event_store_env(url)


@pytest.mark.parametrize("command", ["serve", "audit"])
def test_an_unusable_data_dir_for_the_embedded_redis_is_one_line_naming_data_dir(
    tmp_path: Path, command: str
) -> None:
    # REDIS_URL is unset, so the embedded Redis would keep its files in DATA_DIR: a file.
    not_a_folder = tmp_path / "data-file"
    not_a_folder.write_text("")
    result = run_customers(tmp_path, command, DATA_DIR=str(not_a_folder), PORT=str(free_port()))
    assert_one_line_naming(result, "DATA_DIR")


@contextmanager
def unusable_redis_urls(tmp_path: Path) -> Iterator[dict[str, str]]:
    guarded = ValkeyProcess(tmp_path / "guarded", password="the-right-one")
    guarded.start()
    try:
        yield {
            "nothing listening": f"redis://127.0.0.1:{free_port()}/0",
            "unknown host": "redis://no-such-host.invalid:6379/0",
            "wrong password": f"redis://:not-the-one@127.0.0.1:{guarded.port}/0",
        }
    finally:
        guarded.kill()


def test_serve_with_an_unusable_redis_url_is_one_line_before_anything_is_written(
    tmp_path: Path,
) -> None:
    # The cases run at once, each with its own DATA_DIR: each start is mostly imports.
    with unusable_redis_urls(tmp_path) as cases:
        started = {}
        for case, url in cases.items():
            data_dir = tmp_path / case.replace(" ", "-")
            process = start_customers(
                tmp_path, "serve", REDIS_URL=url, DATA_DIR=str(data_dir), PORT=str(free_port())
            )
            started[case] = (data_dir, process)
        for case, (data_dir, process) in started.items():
            assert_one_line_naming(finished(process), "REDIS_URL")
            # Refused before the first start's admin key (or anything else) was written.
            assert not (data_dir / "admin.token").exists(), case
