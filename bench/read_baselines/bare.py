"""(a) Bare FastAPI: the same route shape returning a constant dict."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

app = FastAPI()

CONSTANT: dict[str, Any] = {
    "id": 1,
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "total_orders": 3,
    "total_spent": "1234.50",
}


@app.get("/api/customers/{customer_id}")
async def customer(customer_id: int) -> dict[str, Any]:
    return CONSTANT
