"""Redis bytes per customer: our compact record beside a naive one-hash-per-customer layout.

    python -m bench.memory [--customers 100000] [--out bench/results/memory.json]

Sample customers (bench.common_data: full profiles, logins, orders) are loaded into a fresh
SQLite event store and projected into a fresh key prefix by our projector. The same values
then go into a naive layout, one hash per customer with the 15 contract fields as strings.
Both are measured with MEMORY USAGE (SAMPLES 0: every field counted) and averaged.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    RESULTS_DIR,
    chunks,
    fresh_redis_prefix,
    redis_url,
    write_json,
)
from bench.common_data import DESCRIPTION, load_and_project
from projections.read_model import Keys, read_customer

PIPELINE = 1000


def naive_fields(document: dict[str, Any]) -> dict[str, str]:
    """The contract document as a naive layout stores it: every field a string."""
    fields: dict[str, str] = {}
    for name, value in document.items():
        if value is None:
            fields[name] = ""
        elif isinstance(value, bool):
            fields[name] = "1" if value else "0"
        else:
            fields[name] = str(value)
    return fields


def average_memory_usage(client: redis.Redis, keys: Sequence[str]) -> float:
    total = 0
    for batch in chunks(keys, PIPELINE):
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        sizes = pipe.execute()
        missing = [key for key, size in zip(batch, sizes, strict=True) if size is None]
        if missing:
            raise RuntimeError(f"{len(missing)} keys are missing, e.g. {missing[0]}")
        total += sum(sizes)
    return total / len(keys)


def measure(customers: int) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url())
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as folder,
        fresh_redis_prefix("mem") as prefix,
        fresh_redis_prefix("naive") as naive_prefix,
    ):
        store_url = f"sqlite:///{Path(folder) / 'events.sqlite'}"
        sample = load_and_project(store_url, customers, prefix)
        keys = Keys(prefix)
        generation = int(client.get(keys.generation) or 1)
        ours = [keys.customer(generation, cid) for cid in range(1, customers + 1)]
        naive = [f"{naive_prefix}:c:{cid}" for cid in range(1, customers + 1)]
        for our_batch, naive_batch in zip(
            chunks(ours, PIPELINE), chunks(naive, PIPELINE), strict=True
        ):
            pipe = client.pipeline(transaction=False)
            for key in our_batch:
                pipe.hmget(key, ["d", "s", "o"])
            records = pipe.execute()
            pipe = client.pipeline(transaction=False)
            for key, naive_key, (doc, spent, orders) in zip(
                our_batch, naive_batch, records, strict=True
            ):
                customer_id = int(key.rsplit(":", 1)[1])
                document = read_customer(customer_id, doc, spent or 0, orders or 0)
                pipe.hset(naive_key, mapping=naive_fields(document))  # type: ignore[arg-type]
            pipe.execute()
        ours_bytes = average_memory_usage(client, ours)
        naive_bytes = average_memory_usage(client, naive)
        encoding = client.object("encoding", ours[0])
        naive_encoding = client.object("encoding", naive[0])
        doc_bytes = [client.hstrlen(key, "d") for key in ours[:PIPELINE]]
        listpack_limit = client.config_get("hash-max-listpack-value").get("hash-max-listpack-value")
    client.close()
    return {
        "customers": customers,
        "data": DESCRIPTION,
        **sample,
        "ours_bytes": round(ours_bytes, 1),
        "naive_bytes": round(naive_bytes, 1),
        "ratio": round(ours_bytes / naive_bytes, 3),
        "ours_encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
        "naive_encoding": (
            naive_encoding.decode() if isinstance(naive_encoding, bytes) else naive_encoding
        ),
        "key_examples": {"ours": ours[0], "naive": naive[0]},
        # A hash whose longest value exceeds this is stored as a hashtable, not a listpack.
        "hash_max_listpack_value": int(listpack_limit) if listpack_limit else None,
        "mean_d_field_bytes": round(sum(doc_bytes) / len(doc_bytes), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "memory.json")
    args = parser.parse_args(argv)
    if args.customers < 1:
        print("error: --customers must be at least 1", file=sys.stderr)
        return 2
    result = measure(args.customers)
    write_json(args.out, result)
    print(
        f"memory: {result['ours_bytes']:.0f} B per customer vs naive {result['naive_bytes']:.0f} B"
        f" ({result['ratio']:.2f}x) over {args.customers:,} customers -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
