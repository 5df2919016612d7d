"""Servers under load and the load generator: the `customers` commands, and wrk.

Our servers run as the production commands (`customers serve | read-api | write-api`),
so they serve with the product's own configuration (runtime/server_config.py); only the
baselines in bench/read_baselines are plain uvicorn, on purpose.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def customers_command(*args: str) -> list[str]:
    """The `customers` CLI installed beside this interpreter, with its arguments."""
    return [str(Path(sys.executable).with_name("customers")), *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(
    command: Sequence[str],
    env: Mapping[str, str],
    port: int,
    probe: str,
    log: Path,
    headers: Mapping[str, str] | None = None,
) -> Iterator[int]:
    """Run a server until the block ends; yields its pid once GET `probe` answers 2xx.

    Its output goes to `log` (a pipe nobody reads could fill and stall it).
    """
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(command), cwd=ROOT, env=dict(env), stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-500:]
                raise RuntimeError(f"{' '.join(command)} exited: {tail}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://{HOST}:{port}{probe}", headers=headers).is_success:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} did not answer {probe} in 60 s")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(25)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_script(directory: Path, customers: int, key: str) -> Path:
    """A wrk script reading random customers 1..customers with a staff key."""
    script = directory / "random_ids.lua"
    script.write_text(
        f"""
math.randomseed(os.time())
local headers = {{ ["Authorization"] = "Token {key}" }}
request = function()
  return wrk.format("GET", "/api/customers/" .. math.random(1, {customers}), headers)
end
"""
    )
    return script


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return round(float(number) * _UNITS[unit], 3)


def run_wrk(
    port: int, script: Path, connections: int, seconds: int, timeout_s: int | None = None
) -> dict[str, Any]:
    """One wrk run (one thread) against 127.0.0.1:port; its rate, latencies and errors."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    if timeout_s is not None:
        command += ["--timeout", f"{timeout_s}s"]
    command.append(f"http://{HOST}:{port}")
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    percentiles = {
        int(match[1]): _ms(match[2])
        for match in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)$", output, re.MULTILINE)
    }
    done = re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s))", output)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    # "connect 0, read 0, write 0, timeout 12": wrk leaves timed-out requests out of its
    # percentiles, so they are counted apart.
    errors_text = socket_errors[1] if socket_errors else ""
    timeouts = errors_text.rsplit("timeout", 1)[1].strip() if "timeout" in errors_text else "0"
    return {
        "connections": connections,
        "rps": round(rps, 1),
        "requests": int(done[1]) if done else None,
        "seconds": round(_ms(done[2]) / 1000, 3) if done else None,
        "p50_ms": percentiles.get(50),
        "p90_ms": percentiles.get(90),
        "p99_ms": percentiles.get(99),
        "non_2xx": int(errors[1]) if errors else 0,
        "socket_errors": socket_errors[1] if socket_errors else None,
        "timeouts": int(timeouts) if timeouts.isdigit() else None,
    }
