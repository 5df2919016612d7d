"""Our read API with the ASGI fast path switched off: the same endpoint via FastAPI routing.

Measures what the fast path wins. This is `customers read-api` itself (its settings from
the environment, its server configuration and start-up), with one change: the app it
builds has no fast path, so every request goes through the framework's routing.

    python -m bench.read_baselines.ours_without_fast_path
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import runtime.http
from runtime.cli_serve import read_api


def main() -> None:
    build_app = runtime.http.build_app

    def without_fast_path(*args: Any, **kwargs: Any) -> runtime.http.ServiceApp:
        app = build_app(*args, **kwargs)
        app.fast_path = None
        return app

    # read_api imports build_app from runtime.http when it runs.
    with mock.patch.object(runtime.http, "build_app", without_fast_path):
        read_api()


if __name__ == "__main__":
    main()
