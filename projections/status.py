"""How far the read model is: position, head, lag, unresolved dead letters, generation."""

from __future__ import annotations

from typing import Any, TypedDict

from eventsourcing.persistence import ApplicationRecorder

from contract.application import APPLICATION_NAME
from projections.dead_letters import unresolved
from projections.read_model import Keys
from projections.redis_client import RedisClient


class ProjectionStatus(TypedDict):
    position: int
    head: int
    lag: int
    dead_letters: int  # poison events not (yet) skipped by an operator
    generation: int


def projection_status(
    client: RedisClient,
    keys: Keys,
    recorder: ApplicationRecorder,
    application_name: str = APPLICATION_NAME,
) -> ProjectionStatus:
    """One snapshot for /readyz and /metrics (two Redis round trips and one store query)."""
    head = recorder.max_notification_id() or 0
    generation = int(client.get(keys.generation) or 1)
    pipe = client.pipeline(transaction=False)
    pipe.hget(keys.tracking(generation), application_name)
    pipe.lrange(keys.dead_letters, 0, -1)
    pipe.hkeys(keys.skips)
    position_raw, letters, skipped = pipe.execute()
    return status_from(head, generation, position_raw, letters, skipped)


def status_from(
    head: int, generation: int, position_raw: Any, letters: list[Any], skipped: list[Any]
) -> ProjectionStatus:
    """The status from raw Redis replies (for callers using the asyncio client)."""
    position = int(position_raw or 0)
    return ProjectionStatus(
        position=position,
        head=head,
        lag=max(head - position, 0),
        dead_letters=unresolved(letters, skipped),
        generation=generation,
    )
