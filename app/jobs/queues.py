"""RQ queues: real Redis in production, synchronous in-process in the embedded default.

Jobs are enqueued only after commit (``enqueue_after_commit``) and take ids, never model
objects. A job opens its own transaction through the same services the API uses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from rq import Queue, Retry

from app.db import on_commit

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


def enqueue(func: Callable[..., Any] | str, *args: Any, queue_name: str = "default", **kw: Any):
    """Enqueue now, with retries and backoff (caller must already have committed)."""
    kw.setdefault("retry", Retry(max=3, interval=[10, 60, 300]))
    return queue(queue_name).enqueue(func, *args, **kw)


def enqueue_after_commit(
    func: Callable[..., Any] | str, *args: Any, queue_name: str = "default", **kw: Any
) -> None:
    on_commit(lambda: enqueue(func, *args, queue_name=queue_name, **kw))
