"""The event-sourced application's name.

The library keys the stored application by it, and the read model records its applied
position under it (the tracking hash), so writers, projector and readers must agree.
"""

from __future__ import annotations

APPLICATION_NAME = "customers"
