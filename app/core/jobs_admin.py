"""Background jobs as staff see them: queue depths, failed jobs with their error, re-runs.

Invariants: queues, failed jobs and re-runs go through RQ's own registries (no parallel
bookkeeping); periodic jobs are read from the scheduler's own records (``app.core.periodic``:
its heartbeat and each job's last run). A re-run is audited in the same transaction, and
happens only if the audit row commits.
Needs Redis: when it is down the API answers 503 (``redis.ConnectionError`` → envelope).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job

from app.core import audit, outbox, periodic
from app.core.base import iso_or_none as _iso
from app.core.errors import Conflict, NotFound
from app.core.extensions import redis_store
from app.core.queues import QUEUE_NAMES, queue
from app.core.schedule import periodic_job_id


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


def _periodic_row(func: str, run: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": periodic_job_id(func),
        "func": func,
        **fields,
        "last_run_at": run.get("started_at") or run.get("finished_at"),
        "last_status": run.get("status"),
        "last_error": run.get("error"),
    }


def schedule() -> dict[str, Any]:
    """The periodic scheduler and its jobs. ``scheduler``: its latest tick, ``alive`` while it
    ticks (``python worker.py`` runs it). ``periodic``: every job of ``PERIODIC_JOBS`` with its
    next run while a scheduler ticks, and its last run as the worker recorded it when the run
    ended (``None`` if none since Redis started: it keeps nothing across a restart). Jobs with
    a recorded run but no longer configured are listed too (``configured: false``) until the
    scheduler's next start forgets them."""
    connection = redis_store.client()
    beat = periodic.heartbeat(connection)
    runs = periodic.last_runs(connection)
    now = time.time()
    jobs = periodic.configured_jobs()
    rows = [
        _periodic_row(
            job.func,
            runs.pop(job.func, {}),
            queue=job.queue,
            interval_seconds=job.interval,
            configured=True,
            scheduled=beat is not None,
            next_run_at=_iso(datetime.fromtimestamp(job.next_run(now), UTC)) if beat else None,
        )
        for job in jobs
    ]
    rows += [
        _periodic_row(
            func,
            run,
            queue=None,
            interval_seconds=None,
            configured=False,
            scheduled=False,
            next_run_at=None,
        )
        for func, run in sorted(runs.items())
    ]
    embedded = periodic.jobs_in_process(current_app)
    scheduler = {
        "alive": beat is not None,
        "name": beat["name"] if beat else None,
        "last_tick_at": beat["at"] if beat else None,
        # "in-process": the embedded server runs each due job itself; "worker": worker.py's
        # scheduler enqueues them for its RQ worker.
        "mode": "in-process" if embedded else "worker",
        "where": where_jobs_run(embedded=embedded, alive=beat is not None),
    }
    return {"scheduler": scheduler, "periodic": rows}


def where_jobs_run(*, embedded: bool, alive: bool) -> str:
    """One sentence for staff: where the periodic jobs run, or what would run them."""
    if embedded and alive:
        return (
            "Embedded mode (no REDIS_URL): this server process runs each periodic job itself "
            "when it is due; no worker.py is needed."
        )
    if embedded:
        return (
            "Embedded mode (no REDIS_URL): the periodic jobs run inside the web server started "
            "by `make run` (python wsgi.py); this process runs none, and cannot see that "
            "server's schedule (it lives in the server's memory)."
        )
    if alive:
        return "worker.py's scheduler enqueues each periodic job when due; its RQ worker runs it."
    return (
        "No scheduler is running: periodic jobs are not being enqueued. `python worker.py` "
        "runs one and restarts it when it stops."
    )


def overview(limit: int = 50) -> dict[str, Any]:
    """Every queue with its counts and newest failed jobs; the outbox; the periodic jobs and
    their scheduler (``schedule``)."""
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
    return {"queues": queues, "outbox": outbox.status(), **schedule()}


def _fetch(job_id: str) -> Job:
    try:
        return Job.fetch(job_id, connection=redis_store.client())
    except (NoSuchJobError, ValueError):  # ValueError: not even a valid RQ job id
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
