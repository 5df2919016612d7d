"""(c) FastAPI + PostgreSQL: totals computed per request with COUNT/SUM over an orders table."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, HTTPException

POOL_SIZE = 8
QUERY = """
    SELECT count(*),
           count(*) FILTER (WHERE NOT cancelled),
           coalesce(sum(amount - refunded) FILTER (WHERE NOT cancelled), 0)
    FROM orders WHERE customer_id = %s
"""

pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    connections = [
        await psycopg.AsyncConnection.connect(os.environ["BENCH_PG_URL"], autocommit=True)
        for _ in range(POOL_SIZE)
    ]
    for connection in connections:
        pool.put_nowait(connection)
    yield
    for connection in connections:
        await connection.close()


app = FastAPI(lifespan=lifespan)


@app.get("/api/customers/{customer_id}")
async def customer(customer_id: int) -> dict[str, Any]:
    connection = await pool.get()
    try:
        cursor = await connection.execute(QUERY, (customer_id,))
        row = await cursor.fetchone()
    finally:
        pool.put_nowait(connection)
    if row is None or row[0] == 0:
        raise HTTPException(404, "Customer not found.")
    return {"id": customer_id, "total_orders": row[1], "total_spent": str(row[2])}
