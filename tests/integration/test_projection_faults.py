"""Exactly-once under crashes: a projector stopped at any step of a page, or killed -9."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rich.console import Console

from projections.projector import STEPS, Projector
from projections.read_model import Keys
from runtime.demo_store import append_sample
from tests.support.projection_helpers import (
    all_projected,
    applied_position,
    customer_service,
    folded,
    wait_until,
)


class SimulatedCrashError(Exception):
    """The projector process died here."""


def crash_at_step(number: int, crashed_at: list[str]) -> Callable[[str], None]:
    """A fault hook that crashes the projector at its number-th step boundary."""
    seen = 0

    def fault(step: str) -> None:
        nonlocal seen
        seen += 1
        if seen == number:
            crashed_at.append(step)
            raise SimulatedCrashError(step)

    return fault


def forget_read_model(client: redis.Redis, keys: Keys) -> None:
    for pattern in (f"{keys.prefix}:*", f"{{{keys.prefix}}}:*"):
        names = list(client.scan_iter(match=pattern, count=1000))
        if names:
            client.delete(*names)


def test_a_crash_at_any_step_boundary_then_restart_gives_the_fault_free_totals(
    event_store_url: str, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    with customer_service(event_store_url) as service:
        append_sample(service, 12, seed=3, progress_console=Console(file=io.StringIO()))
        head = service.recorder.max_notification_id()

        # The fault-free run, and how many step boundaries it passes.
        boundaries: list[str] = []
        Projector(
            service.recorder, client, keys, page_size=9, chunk=1, fault=boundaries.append
        ).catch_up()
        expected = all_projected(client, keys)
        assert expected == folded(service)

        crashed_at: list[str] = []
        for number in range(1, len(boundaries) + 1):
            forget_read_model(client, keys)
            # The projector dies at boundary `number`...
            crashing = Projector(
                service.recorder,
                client,
                keys,
                page_size=9,
                chunk=1,
                fault=crash_at_step(number, crashed_at),
            )
            with pytest.raises(SimulatedCrashError):
                crashing.catch_up()
            # ...and a fresh one (another page size: pages no longer line up) finishes.
            assert Projector(service.recorder, client, keys, page_size=5).catch_up() == head
            assert all_projected(client, keys) == expected, f"crash at {crashed_at[-1]}"
        assert set(crashed_at) == set(STEPS)


def run_cli(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from runtime.cli import main; main()", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_projector_killed_mid_catch_up_restarts_with_exact_totals_and_a_clean_audit(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    store_url = f"sqlite:///{tmp_path / 'events.sqlite'}"
    env = {
        **os.environ,
        "EVENT_STORE_URL": store_url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": redis_prefix,
        "DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    with customer_service(store_url) as service:
        append_sample(service, 150, seed=5, progress_console=Console(file=io.StringIO()))
        head = service.recorder.max_notification_id()
        assert head is not None

        # A projector with tiny pages is killed -9 part-way through its catch-up.
        first = run_cli(env, "project", "--page-size", "2")
        try:
            wait_until(lambda: applied_position(client, keys) >= head // 4, "a quarter applied")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert applied_position(client, keys) < head, "the kill came after the catch-up"

        # A restarted projector finishes the job; then it is stopped as an operator would.
        second = run_cli(env, "project")
        try:
            wait_until(lambda: applied_position(client, keys) == head, "caught up after restart")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=20) == 0

        assert all_projected(client, keys) == folded(service)
        audit = run_cli(env, "audit")
        output, _ = audit.communicate(timeout=60)
        assert audit.returncode == 0, output.decode()
        assert b"audit clean" in output
