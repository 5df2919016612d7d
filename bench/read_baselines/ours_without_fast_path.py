"""Our read app with the ASGI fast path switched off: the same endpoint via FastAPI routing.

Measures what the fast path wins; configured like `customers read-api` (environment).
"""

from __future__ import annotations

from runtime.container import Container
from runtime.http import create_read_app
from runtime.settings import Settings

app = create_read_app(Container(Settings()))
app.fast_path = None
