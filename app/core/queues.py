"""RQ queues: real Redis in production, synchronous in-process in the embedded default.

Jobs are enqueued only after commit (``enqueue_after_commit``) and take ids, never model
objects. A job opens its own transaction through the same services the API uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from rq import Queue, Retry

from app.core import metrics
from app.core.db import on_commit
from app.core.extensions import db

log = logging.getLogger(__name__)

QUEUE_NAMES = ("default", "settlement", "payouts", "reports", "notifications")


def init_app(app: Flask) -> None:
    connection = app.extensions["redis"]
    # Embedded mode has no worker process: run jobs at once, in this process.
    is_async = bool(app.config["REDIS_URL"]) and not app.config.get("RQ_SYNC", False)
    app.extensions["rq_queues"] = {
        name: Queue(name, connection=connection, is_async=is_async) for name in QUEUE_NAMES
    }


def queue(name: str = "default") -> Queue:
    return current_app.extensions["rq_queues"][name]


#: What a job is: a callable or its dotted path (rq's ``FunctionReferenceType``, same constraints).
JobFunc = TypeVar("JobFunc", str, Callable[..., Any])


def enqueue(func: JobFunc, *args: Any, queue_name: str = "default", **kw: Any):
    """Enqueue now, with retries and backoff (caller must already have committed)."""
    kw.setdefault("retry", Retry(max=3, interval=[10, 60, 300]))
    return queue(queue_name).enqueue(func, *args, **kw)


def enqueue_after_commit(func: JobFunc, *args: Any, queue_name: str = "default", **kw: Any) -> None:
    on_commit(lambda: enqueue(func, *args, queue_name=queue_name, **kw))


# Jobs: a function run inside an application context with a clean session.

F = TypeVar("F", bound=Callable[..., Any])

#: Builds the app a worker process runs jobs in; ``app/__init__.py`` installs ``create_app``
#: (core never imports the app factory).
_app_factory: Callable[[], Flask] | None = None
_app: Flask | None = None


def set_app_factory(factory: Callable[[], Flask]) -> None:
    global _app_factory
    _app_factory = factory


def _get_app() -> Flask:
    global _app
    if _app is None:
        if _app_factory is None:
            raise RuntimeError("no app factory: import app (it installs create_app) first")
        _app = _app_factory()
    return _app


def job(fn: F) -> F:
    """Give ``fn`` an app context (worker processes have none) and always release the session."""

    name = f"{fn.__module__}.{fn.__qualname__}"

    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            metrics.job_finished(name, ok=False)
            raise
        metrics.job_finished(name, ok=True)
        return result

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            try:
                return counted(*args, **kwargs)
            finally:
                # Synchronous (embedded) jobs share the caller's session: leave it alone.
                if current_app.extensions["rq_queues"]["default"].is_async:
                    db.session.remove()
        with _get_app().app_context():
            try:
                return counted(*args, **kwargs)
            finally:
                db.session.remove()

    return wrapper  # type: ignore[return-value]
