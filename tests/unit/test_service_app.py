"""Middleware cannot be added where it would silently skip the fast paths."""

from __future__ import annotations

import pytest
from starlette.middleware.gzip import GZipMiddleware

from runtime.http import ServiceApp


def test_add_middleware_refuses_and_points_to_the_edge_pipeline() -> None:
    app = ServiceApp()
    with pytest.raises(TypeError, match=r"edge/pipeline\.py"):
        app.add_middleware(GZipMiddleware)
    assert app.user_middleware == []


def test_middleware_meant_for_the_framework_is_added_by_name() -> None:
    app = ServiceApp()
    app.add_framework_middleware(GZipMiddleware, minimum_size=10)
    assert [entry.cls for entry in app.user_middleware] == [GZipMiddleware]
