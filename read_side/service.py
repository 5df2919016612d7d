"""Operational endpoints: /healthz (alive), /readyz (stores and lag), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from projections.status import status_from
from read_side.read_side import ReadSide
from read_side.redis_link import RedisReplyError, StoreUnavailableError

router = APIRouter(tags=["operations"])

StoreHead = Callable[[], int]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    redis: str
    read_model: str
    event_store: str
    projector: str
    generation: int
    projection_position: int
    event_store_position: int | None
    projection_lag: int | None
    dead_letters: int | None


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Stores reachable, read model whole; projection position, lag and dead letters",
    responses={
        503: {
            "model": Readiness,
            "description": "A store this process serves from is unreachable, or the read "
            "model lost data and is being repaired (`read_model` says why)",
        }
    },
)
async def readyz(request: Request) -> Response:
    read_side: ReadSide = request.app.state.read_side
    store_head: StoreHead | None = getattr(request.app.state, "store_head", None)
    store_required: bool = getattr(request.app.state, "store_required", True)
    projector_running: Callable[[], bool] | None = getattr(
        request.app.state, "projector_running", None
    )
    body: dict[str, Any] = {"status": "ready", "redis": "ok", "event_store": "ok"}
    try:
        await read_side.state.refresh()
        letters, skipped = await asyncio.gather(
            read_side.link.execute("LRANGE", read_side.keys.dead_letters, 0, -1),
            read_side.link.execute("HKEYS", read_side.keys.skips),
        )
        dead_letters: int | None = status_from(0, 0, 0, letters, skipped)["dead_letters"]
    except (StoreUnavailableError, RedisReplyError):
        body["redis"] = "unreachable"
        dead_letters = None
    head: int | None = None
    if store_head is None:
        body["event_store"] = "not configured"
    else:
        try:
            head = await asyncio.wait_for(run_in_threadpool(store_head), timeout=2.0)
        except Exception:  # any failure of the store means not ready; no internals leak
            body["event_store"] = "unreachable"
    position = read_side.state.position
    trouble = read_side.state.trouble
    body["read_model"] = "ok" if trouble is None else trouble
    beat = read_side.state.projector
    seen = "not seen in the last 10 s" if beat is None else f"seen at {beat.get('at', '?')}"
    if projector_running is None:  # another process projects: reported, not required
        body["projector"] = seen
    else:
        body["projector"] = "running" if projector_running() else "stopped"
    body.update(
        generation=read_side.state.generation,
        projection_position=position,
        event_store_position=head,
        projection_lag=None if head is None else max(head - position, 0),
        dead_letters=dead_letters,
    )
    # A process that only reads serves from Redis alone: a PostgreSQL outage is reported,
    # but must not pull it out of a load balancer while it answers reads.
    store_ok = body["event_store"] != "unreachable" or not store_required
    projecting = projector_running is None or body["projector"] == "running"
    ready = body["redis"] == "ok" and trouble is None and store_ok and projecting
    body["status"] = "ready" if ready else "not ready"
    read_side.last_head = head
    return Response(
        Readiness(**body).model_dump_json().encode(),
        status_code=200 if ready else 503,
        media_type="application/json",
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    read_side: ReadSide = request.app.state.read_side
    store_head: StoreHead | None = getattr(request.app.state, "store_head", None)
    if store_head is not None:
        try:
            read_side.last_head = await asyncio.wait_for(run_in_threadpool(store_head), 2.0)
        except Exception:  # the lag is then left out rather than stale
            read_side.last_head = None
    return Response(
        read_side.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
