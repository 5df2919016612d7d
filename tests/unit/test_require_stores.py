"""REQUIRE_STORES=1 (CI) fails a run that skipped, or never ran, a store-backed test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFTEST = """
import pytest
from tests.support.require_stores import pytest_runtest_makereport, pytest_sessionfinish

def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: needs PostgreSQL")
    config.addinivalue_line("markers", "redis: needs Redis")

@pytest.fixture
def redis_url():
    return "redis://example.invalid:6379/0"
"""
STORE_TESTS = """
import pytest

@pytest.mark.postgres
def test_postgres():
    pass

def test_redis(redis_url):
    assert redis_url
"""


def run_suite(folder: Path, tests: str, *, require: bool) -> subprocess.CompletedProcess[str]:
    (folder / "conftest.py").write_text(CONFTEST)
    (folder / "test_sample.py").write_text(tests)
    # No plugins from entry points: only the hooks under test, and a fast start.
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    environment.pop("REQUIRE_STORES", None)
    if require:
        environment["REQUIRE_STORES"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(folder)],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_run_that_exercised_every_store_passes(tmp_path: Path) -> None:
    result = run_suite(tmp_path, STORE_TESTS, require=True)
    assert result.returncode == 0, result.stdout


def test_a_skipped_postgres_test_fails_the_run_under_its_own_name(tmp_path: Path) -> None:
    tests = STORE_TESTS + (
        "\n@pytest.mark.postgres\ndef test_skipped():\n    pytest.skip('no server here')\n"
    )
    result = run_suite(tmp_path, tests, require=True)
    assert result.returncode == 1
    assert "FAILED test_sample.py::test_skipped" in result.stdout
    assert "needs postgres but was skipped" in result.stdout


def test_a_skipped_test_using_a_redis_fixture_fails_the_run(tmp_path: Path) -> None:
    tests = STORE_TESTS + ("\ndef test_skipped(redis_url):\n    pytest.skip('Redis is down')\n")
    result = run_suite(tmp_path, tests, require=True)
    assert result.returncode == 1
    assert "needs redis but was skipped: Skipped: Redis is down" in result.stdout


def test_a_run_without_any_postgres_test_fails(tmp_path: Path) -> None:
    tests = "def test_redis(redis_url):\n    assert redis_url\n"
    result = run_suite(tmp_path, tests, require=True)
    assert result.returncode == 1
    assert "REQUIRE_STORES=1: no postgres test ran" in result.stdout


def test_without_the_switch_a_skip_stays_a_skip(tmp_path: Path) -> None:
    tests = STORE_TESTS + (
        "\n@pytest.mark.postgres\ndef test_skipped():\n    pytest.skip('no server here')\n"
    )
    result = run_suite(tmp_path, tests, require=False)
    assert result.returncode == 0
    assert "1 skipped" in result.stdout
