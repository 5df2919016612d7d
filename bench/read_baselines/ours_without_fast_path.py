"""Our read app with the ASGI fast path switched off: the same endpoint via FastAPI routing.

Measures what the fast path wins. Configured like `customers read-api` (environment) and
served the same way (same uvicorn settings and protocol):

    python -m bench.read_baselines.ours_without_fast_path
"""

from __future__ import annotations

import uvicorn

from runtime.container import Container
from runtime.http import build_app
from runtime.http_protocol import CoalescingHttpToolsProtocol
from runtime.settings import Settings


def main() -> None:
    settings = Settings()
    app = build_app(Container(settings), write=False, read=True)
    app.fast_path = None
    uvicorn.run(
        app,
        host=settings.HOST,
        port=settings.PORT,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        access_log=False,
        proxy_headers=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
