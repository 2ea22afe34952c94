"""Background jobs as staff see them: queue depths, failed jobs with their error, re-runs.

Invariants: reads and re-runs go through RQ's own registries (no parallel bookkeeping);
a re-run is audited in the same transaction, and happens only if the audit row commits.
Needs Redis: when it is down the API answers 503 (``redis.ConnectionError`` → envelope).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job

from app.core import audit, outbox
from app.core.errors import Conflict, NotFound
from app.core.extensions import redis_store
from app.core.queues import QUEUE_NAMES, queue
from app.core.schedule import PERIODIC_JOBS, periodic_job_id


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _exc_summary(exc_info: str | None) -> str | None:
    if not exc_info:
        return None
    lines = [line for line in exc_info.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _status(job: Job) -> str:
    status = job.get_status(refresh=False)
    return getattr(status, "value", status) or ""


def _job_json(job: Job, *, full: bool = False) -> dict[str, Any]:
    result = job.latest_result()
    exc_info = result.exc_string if result is not None else None
    data = {
        "id": job.id,
        "queue": job.origin,
        "func": job.func_name,
        "call": (job.get_call_string() or "")[:300],
        "status": _status(job),
        "enqueued_at": _iso(job.enqueued_at),
        "started_at": _iso(job.started_at),
        "ended_at": _iso(job.ended_at),
        "retries_left": job.retries_left,
        "error": _exc_summary(exc_info),
    }
    if full:
        data["exc_info"] = exc_info
    return data


def _periodic() -> list[dict[str, Any]]:
    """Every periodic job of ``PERIODIC_JOBS`` with its schedule state: whether the scheduler
    holds it (a worker registered the schedule), its next run, and its last run from RQ's
    result record (a periodic job keeps one id, so its latest result is its last run). Scheduled
    entries no longer in ``PERIODIC_JOBS`` are listed too (``configured: false``) until a
    worker start removes them."""
    from rq_scheduler import Scheduler

    scheduler = Scheduler(connection=redis_store.client())
    scheduled = {
        job.id: (job, at)
        for job, at in scheduler.get_jobs(with_times=True)
        if job.meta.get("jackpotx_periodic")
    }
    out = []
    wanted = [(periodic_job_id(f), f, interval, q) for f, interval, q in PERIODIC_JOBS]
    known = {job_id for job_id, *_rest in wanted}
    stale = [(job_id, job.func_name, job.meta.get("interval"), job.origin)
             for job_id, (job, _at) in scheduled.items() if job_id not in known]  # fmt: skip
    for job_id, func, interval, queue_name in [*wanted, *stale]:
        job, at = scheduled.get(job_id, (None, None))
        result = job.latest_result() if job is not None else None
        out.append(
            {
                "id": job_id,
                "func": func,
                "queue": queue_name,
                "interval_seconds": interval,
                "configured": job_id in known,
                "scheduled": job is not None,
                "next_run_at": _iso(at),
                "last_run_at": _iso(result.created_at) if result is not None else None,
                "last_status": result.type.name.lower() if result is not None else None,
                "last_error": _exc_summary(result.exc_string) if result is not None else None,
            }
        )
    return out


def overview(limit: int = 50) -> dict[str, Any]:
    """Every queue with its counts and newest failed jobs; the outbox; the periodic jobs."""
    connection = redis_store.client()
    queues = []
    for name in QUEUE_NAMES:
        q = queue(name)
        failed = q.failed_job_registry
        ids = failed.get_job_ids(0, limit - 1, desc=True) if limit else []
        jobs = [j for j in Job.fetch_many(ids, connection=connection) if j is not None]
        queues.append(
            {
                "name": name,
                "queued": q.count,
                "started": q.started_job_registry.count,
                "scheduled": q.scheduled_job_registry.count,
                "deferred": q.deferred_job_registry.count,
                "failed_count": failed.count,
                "failed": [_job_json(j) for j in jobs],
            }
        )
    return {"queues": queues, "outbox": outbox.status(), "periodic": _periodic()}


def _fetch(job_id: str) -> Job:
    try:
        return Job.fetch(job_id, connection=redis_store.client())
    except NoSuchJobError:
        raise NotFound("Job not found") from None


def detail(job_id: str) -> dict[str, Any]:
    return _job_json(_fetch(job_id), full=True)


def requeue(job_id: str, *, actor: Any) -> dict[str, Any]:
    """Put a failed job back on its queue (caller owns the transaction: the audit row)."""
    job = _fetch(job_id)
    if job.origin not in QUEUE_NAMES:
        raise NotFound("Job not found")
    registry = queue(job.origin).failed_job_registry
    if job.id not in registry:
        raise Conflict("Only a failed job can be re-run")
    before = _job_json(job)
    audit.record(
        "jobs.requeue",
        actor=actor,
        target_type="job",
        target_id=job.id,
        before={"status": before["status"], "queue": job.origin, "error": before["error"]},
        after={"status": "queued"},
    )
    registry.requeue(job.id)
    return _job_json(_fetch(job_id))
