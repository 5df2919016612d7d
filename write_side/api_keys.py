"""API keys as the write side lists and checks them: entries folded from ApiKey events."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Mapper

from write_side.domain.api_key import ApiKey

API_KEY_TOPICS = (ApiKey.Issued.TOPIC, ApiKey.Revoked.TOPIC)
PAGE = 1000


@dataclass(frozen=True)
class IssuedKey:
    """A key just issued: the only time the key itself is known."""

    name: str
    role: str
    key: str
    position: int


@dataclass(frozen=True)
class ApiKeyEntry:
    """What is known of one key; a revocation read alone has no name or role yet."""

    name: str
    role: str
    key_hash: str
    revoked: bool
    issued_at: datetime


def fold(entries: dict[str, ApiKeyEntry], entry: ApiKeyEntry) -> None:
    """Add a later entry to entries by key hash; a revocation keeps the known name and role."""
    known = entries.get(entry.key_hash)
    if known is not None and entry.revoked and not entry.name:
        entry = replace(known, revoked=True)
    entries[entry.key_hash] = entry


def entry_of(event: ApiKey.Issued | ApiKey.Revoked) -> ApiKeyEntry:
    """What one key event says of its key."""
    if isinstance(event, ApiKey.Issued):
        return ApiKeyEntry(event.name, event.role, event.key_hash, False, event.timestamp)
    return ApiKeyEntry("", "", event.key_hash, True, event.timestamp)


def read_entries(
    recorder: ApplicationRecorder, mapper: Mapper[UUID], after: int = 0
) -> tuple[list[ApiKeyEntry], int]:
    """Key events after a position, folded into entries; and the last position read."""
    entries: dict[str, ApiKeyEntry] = {}
    position = after
    while True:
        page = recorder.select_notifications(position + 1, PAGE, topics=API_KEY_TOPICS)
        for notification in page:
            event = mapper.to_domain_event(notification)
            position = notification.id
            if isinstance(event, ApiKey.Issued | ApiKey.Revoked):
                fold(entries, entry_of(event))
        if len(page) < PAGE:
            return list(entries.values()), position


def has_keys(recorder: ApplicationRecorder) -> bool:
    """Whether any key was ever issued."""
    return bool(recorder.select_notifications(1, 1, topics=API_KEY_TOPICS))
