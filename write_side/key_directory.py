"""The API keys a write process knows, read from the event store and kept fresh.

No web framework here: the CLI and the order desk use it as well as the HTTP routes.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from edge.access_policy import WRITE_EVENTS, AccessRefusedError, authorize, grant_for
from write_side.api_keys import ApiKeyEntry, fold
from write_side.application import CustomerService

# How old the keys may be that a request is checked against: the bound on revocation.
MAX_AGE_SECONDS = 0.5


class KeyDirectory:
    """Key hash -> entry, refreshed from the event store at most every `max_age` seconds.

    Revocation therefore takes effect within `max_age` in every process. A key not known
    yet (created a moment ago, perhaps by another process) is looked up again after a
    refresh that started after the request arrived, so new keys work at once.
    One refresh runs at a time and everyone who needs one meanwhile waits for it, so a
    flood of unknown keys keeps at most one small query in flight. When the store is
    unavailable, keys older than `max_age` are never used: the refresh's error reaches
    every request waiting for it, and every request that arrived before it failed,
    without another attempt each (during an outage each would wait for the store).
    """

    def __init__(self, service: CustomerService, max_age: float = MAX_AGE_SECONDS) -> None:
        self._service = service
        self._max_age = max_age
        self._entries: dict[str, ApiKeyEntry] = {}
        self._position = 0
        self._refreshed_at = float("-inf")  # when the last completed refresh started
        self._lock = threading.Lock()
        self._refreshing: _Refresh | None = None
        self._failure: _Failure | None = None  # of the last refresh, if it failed

    def lookup(self, key: str, arrived: float | None = None) -> ApiKeyEntry | None:
        """The key's entry, fresh enough for a request that arrived at `arrived`.

        Known keys come from a read at most `max_age` before that; a key not known yet is
        looked for again after a refresh that began after it. `arrived` is a
        time.monotonic() reading, now by default. Raises the store's error if the keys
        could not be read.
        """
        if arrived is None:
            arrived = time.monotonic()
        self._refresh_unless_started_after(arrived - self._max_age, arrived)
        entry = grant_for(key, self._entries)
        if entry is None:
            self._refresh_unless_started_after(arrived, arrived)
            entry = grant_for(key, self._entries)
        return entry

    def known(self, key: str, arrived: float) -> ApiKeyEntry | None:
        """The key's entry if the keys in memory already decide it, without waiting;
        None when only `lookup` can tell (the key is unknown, or the keys are too old)."""
        if self._refreshed_at < arrived - self._max_age:
            return None
        return grant_for(key, self._entries)

    def may_write(self, key: str, arrived: float | None = None) -> bool:
        """Whether the access policy lets the key write events."""
        try:
            authorize(self.lookup(key, arrived), WRITE_EVENTS)
        except AccessRefusedError:
            return False
        return True

    def _refresh_unless_started_after(self, moment: float, arrived: float) -> None:
        while self._refreshed_at < moment:
            with self._lock:
                if self._refreshed_at >= moment:
                    return
                failure = self._failure
                if failure is not None and failure.at >= arrived:
                    raise failure.error
                refresh = self._refreshing
                leading = refresh is None
                if refresh is None:
                    refresh = self._refreshing = _Refresh(time.monotonic())
            if leading:
                self._refresh(refresh)
                return
            # Raises what the refresh raised; if it began too early, the loop asks again.
            refresh.done.result()

    def _refresh(self, refresh: _Refresh) -> None:
        try:
            entries, position = self._service.api_key_entries(after=self._position)
        except BaseException as error:
            with self._lock:
                self._refreshing = None
                if isinstance(error, Exception):
                    self._failure = _Failure(time.monotonic(), error)
            refresh.done.set_exception(error)
            raise
        with self._lock:
            for entry in entries:
                fold(self._entries, entry)
            self._position = position
            self._refreshed_at = refresh.started
            self._failure = None
            self._refreshing = None
        refresh.done.set_result(None)


@dataclass(frozen=True)
class _Refresh:
    started: float
    done: Future[None] = field(default_factory=Future)


@dataclass(frozen=True)
class _Failure:
    at: float
    error: Exception
