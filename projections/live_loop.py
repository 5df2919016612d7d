"""The live projector: catch up, then follow new events until stopped.

It wakes when this process appends (Projector.notify) or PostgreSQL sends NOTIFY, and
polls otherwise. A store that is down is retried with backoff and never costs a page; a
poison event stops it until an operator skips it; a Redis found to have lost data is
repaired on the way, by a replay or by a rebuild into a new generation.
"""

from __future__ import annotations

import logging
import threading
import time

from projections.event_decoding import UnprojectableEventError
from projections.postgres_listener import PostgresListener
from projections.projector import Projector
from projections.rebuild import rebuild_for_repair
from projections.repair import ReadModelLostError

logger = logging.getLogger(__name__)

# SQLite has no change notifications: poll this often. PostgreSQL wakes on NOTIFY and
# polls this rarely as a safety net.
SQLITE_POLL_SECONDS = 0.1
POSTGRES_POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 10.0
# How often an idle projector checks that Redis still holds what it wrote.
VERIFY_SECONDS = 1.0


def run_live(projector: Projector, stop: threading.Event) -> None:
    """Catch up, then follow new events until stop is set."""
    listener = PostgresListener.start_for(projector.recorder, projector.wake)
    poll = POSTGRES_POLL_SECONDS if listener else SQLITE_POLL_SECONDS
    backoff = 0.0
    last_problem = ""
    try:
        while not stop.is_set():
            projector.wake.clear()
            try:
                if projector.repair.rebuild_pending:
                    rebuild_for_repair(projector)
                if time.monotonic() - projector.verified_at >= VERIFY_SECONDS:
                    projector.verify()
                projector.beat()
                projector.catch_up()
                projector.blocked = None
                backoff, last_problem = 0.0, ""
            except ReadModelLostError as lost:
                projector.start_repair(lost)
                continue
            except UnprojectableEventError as poison:
                # Stopped until an operator skips it; look again now and then.
                projector.blocked = poison
                backoff = max(backoff, 1.0)
            except Exception as error:  # a store is down: retry, never lose a page
                problem = f"{type(error).__name__}: {error}"
                projector.verified_at = float("-inf")  # reconnected later: check first
                if problem != last_problem:
                    logger.warning("projection paused, retrying: %s", problem)
                    last_problem = problem
                backoff = min(max(backoff * 2, 0.2), MAX_BACKOFF_SECONDS)
            _sleep(projector.wake, stop, max(poll, backoff))
    finally:
        if listener:
            listener.stop()


def _sleep(wake: threading.Event, stop: threading.Event, seconds: float) -> None:
    """Wait `seconds`, or less if woken or stopped."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or wake.wait(min(remaining, 0.05)):
            return
