"""The rebuild measurement: `customers rebuild` on a store of N events, timed.

    python -m bench.rebuild --events 1000000 [--out bench/results/rebuild.json]

A fresh PostgreSQL database is filled with the application's own events (bench.common_data's
sample customers, until N events), then projections.rebuild
replays it into a new generation and switches to it, exactly as the CLI does. Its wall time
covers reading, projecting and the atomic switch (not the drop of the old generation).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    RESULTS_DIR,
    fresh_postgres_database,
    fresh_redis_prefix,
    redis_url,
    write_json,
)
from bench.common_data import DESCRIPTION, load_sample
from projections.read_model import Keys
from write_side.application import CustomerService


def measure(events: int) -> dict[str, Any]:
    from projections.rebuild import rebuild
    from runtime.settings import event_store_env

    client = redis.Redis.from_url(redis_url(), socket_timeout=60)
    with fresh_postgres_database("rebuild") as url, fresh_redis_prefix("rebuild") as prefix:
        service = CustomerService(event_store_env(url))
        try:
            started = time.perf_counter()
            written = load_sample(service, events=events).events
            fill_seconds = time.perf_counter() - started
            result = rebuild(service.recorder, client, Keys(prefix), drop_grace=0.0)
        finally:
            service.close()
    client.close()
    return {
        "store": "PostgreSQL",
        "events": result.events,
        "events_written": written,
        "seconds": round(result.seconds, 2),
        "eps": round(result.events / result.seconds) if result.seconds else None,
        "data": DESCRIPTION,
        "fill_seconds": round(fill_seconds, 1),
        "method": (
            f"`projections.rebuild` (what `customers rebuild` runs) over {result.events:,} "
            "events on PostgreSQL: replay into a new generation and the atomic switch; "
            "filling the store and dropping the old generation are not counted."
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "rebuild.json")
    args = parser.parse_args(argv)
    if args.events < 1:
        print("error: --events must be at least 1", file=sys.stderr)
        return 2
    result = measure(args.events)
    write_json(args.out, result)
    print(
        f"rebuild: {result['events']:,} events in {result['seconds']:.1f} s "
        f"({result['eps']:,} events/s) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
