"""Job functions the job tests enqueue (importable by an in-process RQ worker)."""

from __future__ import annotations

import os

from rq import get_current_job


def explode(order_id: int) -> None:
    raise ValueError(f"payout gateway said no for order {order_id}")


def succeed(order_id: int) -> int:
    return order_id


def tick() -> None:
    """A periodic job the scheduler tests run every second: counts its runs in Redis, with the
    pid of the RQ worker process that ran it (the parent of RQ's work horse)."""
    job = get_current_job()
    assert job is not None
    job.connection.rpush("jx:test:ticks", os.getppid())


def boom() -> None:
    raise RuntimeError("periodic job went wrong")
