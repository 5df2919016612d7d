"""PostgreSQL connection failures are named; EVENT_STORE_URL's libpq options reach the server."""

from __future__ import annotations

import gc
import threading
import uuid
import weakref
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runtime.event_store import open_customer_service, why_unreachable
from runtime.processes import free_port
from tests.conftest import with_query
from tests.integration.test_settings_errors import finished, start_customers
from tests.support.servers import postgres_admin_url
from tests.support.waiting import wait_until

pytestmark = pytest.mark.postgres


def test_each_kind_of_postgresql_failure_is_told_apart(postgres_url: str, tmp_path: Path) -> None:
    # All used to be "couldn't get a connection after 2.00 sec".
    missing_database = postgres_admin_url().rsplit("/", 1)[0] + "/no_such_database"
    cases = {
        "does not exist": missing_database,
        "Connection refused": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "no-such-host.invalid": "postgresql://postgres@no-such-host.invalid:5432/postgres",
    }
    # At once: each case waits out the pool's connect timeout (2 s) before it is told apart.
    started = {
        expected: start_customers(tmp_path, "tokens", "list", EVENT_STORE_URL=url)
        for expected, url in cases.items()
    }
    for expected, process in started.items():
        result = finished(process)
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: EVENT_STORE_URL: cannot open the event store (")
        assert expected in lines[0]
        assert "couldn't get a connection" not in lines[0]


def test_a_store_that_connects_has_no_reason_to_report(postgres_url: str) -> None:
    assert why_unreachable(postgres_url) is None


def test_sslmode_require_is_honoured_not_dropped(postgres_url: str) -> None:
    # The test server speaks no TLS: requiring it must fail, not connect in plain text.
    reason = why_unreachable(with_query(postgres_url, sslmode="require"))
    assert reason is not None
    assert "SSL" in reason


def test_application_name_reaches_every_pooled_connection(postgres_url: str) -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    service = open_customer_service(with_query(postgres_url, application_name=name))
    try:
        service.recorder.max_notification_id()
        with psycopg.connect(postgres_admin_url()) as conn:
            found = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
        assert found is not None
        assert found[0] >= 1
    finally:
        service.close()


def test_a_closed_stores_guard_is_let_go(postgres_url: str) -> None:
    # The guards' watchdog held every guard it had checked: a closed store, its pools and
    # their connections' state were never freed, and all were checked ten times a second.
    service = open_customer_service(postgres_url)
    service.recorder.max_notification_id()
    checked = threading.Event()
    tell_checks(service.recorder.guard, checked)  # type: ignore[attr-defined]
    assert checked.wait(timeout=10)  # the watchdog has taken it up
    guard = weakref.ref(service.recorder.guard)  # type: ignore[attr-defined]
    service.close()
    del service
    assert wait_until(lambda: gc.collect() >= 0 and guard() is None, deadline=2)


def tell_checks(store_guard: Any, checked: threading.Event) -> None:
    """Set `checked` each time the watchdog checks this guard."""
    check = store_guard.check_slow_calls

    def checked_by_the_watchdog() -> None:
        checked.set()
        check()

    store_guard.check_slow_calls = checked_by_the_watchdog
