"""Run a job function inside an application context with a clean session."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, has_app_context

F = TypeVar("F", bound=Callable[..., Any])

_app = None


def _get_app():
    global _app
    if _app is None:
        from app import create_app

        _app = create_app()
    return _app


def job(fn: F) -> F:
    """Give ``fn`` an app context (worker processes have none) and always release the session."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from app.extensions import db

        if has_app_context():
            try:
                return fn(*args, **kwargs)
            finally:
                # Synchronous (embedded) jobs share the caller's session: leave it alone.
                if current_app.extensions["rq_queues"]["default"].is_async:
                    db.session.remove()
        with _get_app().app_context():
            try:
                return fn(*args, **kwargs)
            finally:
                db.session.remove()

    return wrapper  # type: ignore[return-value]
