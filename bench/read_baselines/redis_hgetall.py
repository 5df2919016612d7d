"""(b) FastAPI + redis.asyncio: HGETALL of the customer's read model hash, returned as is."""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException

from projections.read_model import Keys

client = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)
keys = Keys(os.environ["BENCH_PREFIX"])
generation = int(os.environ.get("BENCH_GENERATION", "1"))
app = FastAPI()


@app.get("/api/customers/{customer_id}")
async def customer(customer_id: int) -> dict[bytes | str, bytes | str]:
    fields = await client.hgetall(keys.customer(generation, customer_id))
    if not fields:
        raise HTTPException(404, "Customer not found.")
    return fields
