"""Opening the store retries schema collisions with other processes, and nothing else."""

from __future__ import annotations

from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError
from psycopg.errors import DuplicateObject, DuplicateTable, UndefinedTable

from runtime.event_store import is_schema_collision


def wrapped(cause: Exception) -> ProgrammingError:
    """What the library raises: its own error, caused by psycopg's."""
    try:
        raise ProgrammingError(str(cause)) from cause
    except ProgrammingError as error:
        return error


def test_a_table_or_type_created_meanwhile_by_another_process_is_a_collision() -> None:
    assert is_schema_collision(
        wrapped(DuplicateTable('relation "customers_events" already exists'))
    )
    assert is_schema_collision(wrapped(DuplicateObject('type "stored_event_uuid" already exists')))
    assert is_schema_collision(InternalError("tuple concurrently updated"))
    assert is_schema_collision(IntegrityError("duplicate key value violates unique constraint"))


def test_other_programming_errors_are_real_mistakes_and_not_retried() -> None:
    assert not is_schema_collision(wrapped(UndefinedTable('relation "nowhere" does not exist')))
    assert not is_schema_collision(ProgrammingError("Syntax error"))
