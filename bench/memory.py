"""Redis bytes per customer: layout 2 beside layout 1 and a naive one-hash-per-customer layout.

    python -m bench.memory [--customers 100000] [--out bench/results/memory.json]

Sample customers (bench.common_data: full profiles, logins, orders) are loaded into a fresh
SQLite event store and projected into a fresh key prefix by our projector (layout 2:
16 customers per listpack hash, plus one checkpoint key per partition, counted too). The
same documents then go into layout 1 (one hash per customer: the record as a JSON array,
spent and orders, as versions before partitions stored it) and into a naive layout, one
hash per customer with the 15 contract fields as strings. All are measured with MEMORY
USAGE (SAMPLES 0: every field counted) and divided by the number of customers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import redis

from bench.common import (
    RESULTS_DIR,
    chunks,
    fresh_redis_prefix,
    redis_url,
    write_json,
)
from bench.common_data import DESCRIPTION, load_and_project
from contract.customer_document import PROFILE_FIELDS
from projections.customer_record import fields_of, read_fields
from projections.read_model import PARTITIONS, Keys

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


def layout1_fields(document: dict[str, Any], position: int) -> dict[str, bytes | int]:
    """A document as layout 1 stored it: d = JSON [position, active, joined, login, *profile]."""
    record = [
        str(position),
        1 if document["is_active"] else 0,
        document["date_joined"],
        document["last_login"],
        *(document[name] for name in PROFILE_FIELDS),
    ]
    spent = document["total_spent"].replace(".", "")
    return {"d": orjson.dumps(record), "s": int(spent), "o": document["total_orders"]}


def total_memory_usage(client: redis.Redis, keys: Sequence[str | bytes]) -> int:
    total = 0
    for batch in chunks(keys, PIPELINE):
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
        sizes = pipe.execute()
        missing = [key for key, size in zip(batch, sizes, strict=True) if size is None]
        if missing:
            raise RuntimeError(f"{len(missing)} keys are missing, e.g. {missing[0]!r}")
        total += sum(sizes)
    return total


def measure(customers: int) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url())
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as folder,
        fresh_redis_prefix("mem") as prefix,
        fresh_redis_prefix("v1") as v1_prefix,
        fresh_redis_prefix("naive") as naive_prefix,
    ):
        store_url = f"sqlite:///{Path(folder) / 'events.sqlite'}"
        sample = load_and_project(store_url, customers, prefix)
        keys = Keys(prefix)
        generation = int(client.get(keys.generation) or 1)
        ids = range(1, customers + 1)
        buckets = sorted({keys.bucket(generation, cid) for cid in ids})
        checkpoints = [keys.checkpoint(generation, p) for p in range(PARTITIONS)]
        checkpoints = [key for key in checkpoints if client.exists(key)]
        v1_keys = [f"{v1_prefix}:g1:c:{cid}" for cid in ids]
        naive = [f"{naive_prefix}:c:{cid}" for cid in ids]
        for batch in chunks(list(ids), PIPELINE):
            pipe = client.pipeline(transaction=False)
            for cid in batch:
                pipe.hmget(keys.bucket(generation, cid), list(fields_of(cid)))
            records = pipe.execute()
            pipe = client.pipeline(transaction=False)
            for cid, fields in zip(batch, records, strict=True):
                document = read_fields(cid, fields)
                if document is None:
                    raise RuntimeError(f"customer {cid} was not projected")
                position = int(fields[0].partition(b"\x1f")[0])
                pipe.hset(f"{v1_prefix}:g1:c:{cid}", mapping=layout1_fields(document, position))  # type: ignore[arg-type]
                pipe.hset(f"{naive_prefix}:c:{cid}", mapping=naive_fields(document))  # type: ignore[arg-type]
            pipe.execute()
        ours_bytes = total_memory_usage(client, [*buckets, *checkpoints]) / customers
        v1_bytes = total_memory_usage(client, v1_keys) / customers
        naive_bytes = total_memory_usage(client, naive) / customers
        encodings = [client.object("encoding", key) for key in buckets[: min(len(buckets), 1000)]]
        listpacks = sum(1 for encoding in encodings if encoding == b"listpack")
        v1_encoding = client.object("encoding", v1_keys[0])
        naive_encoding = client.object("encoding", naive[0])
        limits = client.config_get("hash-max-listpack-*")
    client.close()
    return {
        "customers": customers,
        "data": DESCRIPTION,
        **sample,
        "ours_bytes": round(ours_bytes, 1),
        "v1_bytes": round(v1_bytes, 1),
        "naive_bytes": round(naive_bytes, 1),
        "ratio": round(ours_bytes / naive_bytes, 3),
        "ratio_v1": round(ours_bytes / v1_bytes, 3),
        "buckets": len(buckets),
        "checkpoint_keys": len(checkpoints),
        "listpack_share": round(listpacks / len(encodings), 4),
        "v1_encoding": _text(v1_encoding),
        "naive_encoding": _text(naive_encoding),
        "key_examples": {"ours": buckets[0], "v1": v1_keys[0], "naive": naive[0]},
        # A hash with a value longer than this, or more fields, is stored as a hashtable.
        "hash_max_listpack_value": int(limits.get("hash-max-listpack-value") or 0) or None,
        "hash_max_listpack_entries": int(limits.get("hash-max-listpack-entries") or 0) or None,
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        f"memory: {result['ours_bytes']:.0f} B per customer, layout 1 {result['v1_bytes']:.0f} B,"
        f" naive {result['naive_bytes']:.0f} B over {args.customers:,} customers -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
