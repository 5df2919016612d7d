"""Asking the same questions of an app with its fast paths, then of the framework alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from runtime.http import ServiceApp

Answers = TypeVar("Answers")


def framework_alone(app: ServiceApp, answers: Callable[[], Answers]) -> Answers:
    """What `answers` sees while the app's fast paths are off (the framework's routes)."""
    fast_path, app.fast_path = app.fast_path, None
    try:
        return answers()
    finally:
        app.fast_path = fast_path
