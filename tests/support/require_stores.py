"""REQUIRE_STORES=1 (CI): a store-backed test that is skipped fails instead.

A test is store-backed when it is marked `postgres` or `redis`, or when it uses a fixture
that hands out a real store. Such a skip is turned into a failure in the test's own report,
so it shows under its name. The run also fails when not a single PostgreSQL or Redis test
ran: a suite that quietly stopped exercising a store proves nothing about it.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

STORE_MARKERS = ("postgres", "redis")
STORE_FIXTURES = {
    "postgres": ("postgres_url", "postgres_admin_url"),
    "redis": ("redis_url", "redis_prefix"),
}

_ran: dict[str, int] = dict.fromkeys(STORE_MARKERS, 0)


def stores_required() -> bool:
    return os.environ.get("REQUIRE_STORES", "") == "1"


def stores_of(item: pytest.Item) -> set[str]:
    """The stores a test needs, by marker or by the fixtures it uses."""
    fixtures = set(getattr(item, "fixturenames", ()))
    return {
        store
        for store in STORE_MARKERS
        if item.get_closest_marker(store) is not None or fixtures & set(STORE_FIXTURES[store])
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    stores = stores_of(item)
    if not stores_required() or not stores:
        return report
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"REQUIRE_STORES=1: this test needs {' and '.join(sorted(stores))} "
            f"but was skipped: {reason}"
        )
    elif report.when == "call":
        for store in stores:
            _ran[store] += 1
    return report


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if not stores_required() or session.config.option.collectonly:
        return
    missing = [store for store, count in _ran.items() if count == 0]
    if missing and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.line("")
            reporter.write_sep(
                "=", f"REQUIRE_STORES=1: no {' or '.join(missing)} test ran", red=True
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
