"""Wait for eventual consistency explicitly: poll a condition until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], *, deadline: float = 5.0) -> bool:
    """True as soon as `condition()` holds; False if it still does not after `deadline` s."""
    ends = time.monotonic() + deadline
    while True:
        if condition():
            return True
        if time.monotonic() >= ends:
            return False
        time.sleep(0.02)
