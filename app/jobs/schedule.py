"""Periodic jobs for rq-scheduler; each domain adds its own entry here."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: (job function path, interval seconds, queue)
PERIODIC_JOBS: list[tuple[str, int, str]] = [
    ("app.jobs.mail.deliver_pending", 60, "notifications"),
]


def register_periodic_jobs(scheduler) -> None:
    """Replace the scheduled set with ``PERIODIC_JOBS`` (idempotent across restarts)."""
    from datetime import UTC, datetime

    for job in scheduler.get_jobs():
        if job.meta.get("jackpotx_periodic"):
            scheduler.cancel(job)
    for func, interval, queue_name in PERIODIC_JOBS:
        job = scheduler.schedule(
            scheduled_time=datetime.now(UTC),
            func=func,
            interval=interval,
            repeat=None,
            queue_name=queue_name,
            meta={"jackpotx_periodic": True},
        )
        log.info("scheduled %s every %ss on %s (%s)", func, interval, queue_name, job.id)
