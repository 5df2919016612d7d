"""SQLite has one projector: a lock file beside the database says who it is.

Several projectors share the work only through PostgreSQL (projections/worker_group.py).
On SQLite a second `customers project` would apply every page again (safely, but for
nothing), so it is refused with a line naming the one already running.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from runtime.settings import event_store_env


class ProjectorRunningError(Exception):
    """Another projector holds this SQLite store's lock."""


def sqlite_path(event_store_url: str) -> Path | None:
    """The database file of a SQLite EVENT_STORE_URL (None: in memory, or PostgreSQL)."""
    database = event_store_env(event_store_url).get("SQLITE_DBNAME")
    if database is None or "memory" in database:
        return None
    return Path(database)


def hold_projector_lock(database: Path) -> IO[str]:
    """Take the lock (kept while the returned file stays open); raises
    ProjectorRunningError naming the holder if another projector has it."""
    lock_path = database.with_name(database.name + ".projector.lock")
    handle = lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise ProjectorRunningError(
            f"a projector is already running on this SQLite event store ({holder}); "
            "SQLite has one projector: stop that one, or use PostgreSQL to run several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle
