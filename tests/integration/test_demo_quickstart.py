"""The README quickstart works as written: `make run`, then its curl and Python examples."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.processes import free_port
from tests.support import local_http
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCUMENTED_ADDRESS = "127.0.0.1:8000"


def readme_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)
    matching = [block for block in blocks if containing in block]
    assert matching, f"the README has no {language} block with {containing!r}"
    return str(matching[0])


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`make run` on the embedded defaults, its data under tmp_path/data."""
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("EVENT_STORE_URL", "REDIS_URL", "DATA_DIR", "HOST", "PORT", "MAKEFLAGS")
    }
    environment |= {
        "DATA_DIR": str(tmp_path / "data"),
        "EVENT_STORE_URL": f"sqlite:///{tmp_path / 'data' / 'events.sqlite'}",
        "PORT": str(port),
    }
    log = tmp_path / "make-run.log"
    # The environment this test runs in serves as make's venv, installed already (-o).
    venv = sys.prefix
    command = ["make", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "-o", f"{venv}/.installed-run", "run"],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"127.0.0.1:{port}", tmp_path, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_make_run_serves_sample_customers_to_the_readme_examples(
    quickstart: tuple[str, Path, Path],
) -> None:
    address, folder, log = quickstart

    # Given `make run` on an empty store, once it answers /healthz
    def healthy() -> bool:
        try:
            return local_http.get(f"http://{address}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(healthy, deadline=60), log.read_text(errors="replace")[-3000:]
    output = log.read_text(errors="replace")
    assert "admin.token" in output
    assert "Added 100 customers" in output

    # And the sample customer 1 has reached the read model
    key = (folder / "data" / "admin.token").read_text().strip()

    def projected() -> bool:
        response = local_http.get(
            f"http://{address}/api/customers/1",
            headers={"Authorization": f"Token {key}"},
            timeout=2,
        )
        return response.status_code == 200

    assert wait_until(projected, deadline=60), log.read_text(errors="replace")[-3000:]

    # When the README's curl line runs from the folder that holds data/
    curl = readme_block("sh", "curl").replace(DOCUMENTED_ADDRESS, address)
    by_curl = subprocess.run(
        ["sh", "-c", curl], cwd=folder, capture_output=True, text=True, timeout=30, check=False
    )

    # Then it prints customer 1
    assert by_curl.returncode == 0, by_curl.stderr
    assert json.loads(by_curl.stdout)["id"] == 1

    # And so does the README's Python example
    python = readme_block("python", "import requests").replace(DOCUMENTED_ADDRESS, address)
    by_python = subprocess.run(
        [sys.executable, "-c", python],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert by_python.returncode == 0, by_python.stderr
    assert "'id': 1" in by_python.stdout
    assert "'total_spent':" in by_python.stdout
