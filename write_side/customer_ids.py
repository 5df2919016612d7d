"""Allocating customer ids: the next free integer, shared safely with other writers."""

from __future__ import annotations

import threading
from collections.abc import Callable


class CustomerIdAllocator:
    """Hands out the next free customer id; other processes may take ids meanwhile.

    Each process keeps a hint. A save that conflicts means another writer took the id;
    the hint then jumps past the taken run by exponential then binary probing.
    """

    def __init__(self, exists: Callable[[int], bool]) -> None:
        self._exists = exists
        self._lock = threading.Lock()
        self._hint: int | None = None

    def next_candidate(self) -> int:
        with self._lock:
            if self._hint is None:
                self._hint = self._first_free_from(1)
            candidate = self._hint
            self._hint += 1
            return candidate

    def taken(self, candidate: int) -> None:
        with self._lock:
            free = self._first_free_from(candidate + 1)
            if self._hint is None or free > self._hint:
                self._hint = free

    def _first_free_from(self, start: int) -> int:
        if not self._exists(start):
            return start
        taken, step = start, 1
        while self._exists(taken + step):
            taken += step
            step *= 2
        free = taken + step
        while free - taken > 1:
            middle = (taken + free) // 2
            if self._exists(middle):
                taken = middle
            else:
                free = middle
        return free
