"""(b) FastAPI + redis.asyncio: the customer's fields of its read model hash, returned as is."""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException

from projections.customer_record import fields_of
from projections.read_model import Keys

client = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=False)
keys = Keys(os.environ["BENCH_PREFIX"])
generation = int(os.environ.get("BENCH_GENERATION", "1"))
app = FastAPI()


@app.get("/api/customers/{customer_id}")
async def customer(customer_id: int) -> dict[bytes | str, bytes | str]:
    names = fields_of(customer_id)
    values = await client.hmget(keys.bucket(generation, customer_id), list(names))
    if values[0] is None:
        raise HTTPException(404, "Customer not found.")
    # Chunks may cut a character in two: each goes out byte for byte, as latin-1 text.
    return {
        name.decode(): value.decode("latin-1")
        for name, value in zip(names, values, strict=True)
        if value is not None
    }
