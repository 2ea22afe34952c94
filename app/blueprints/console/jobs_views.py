"""Background jobs: queues, failed jobs with their error and a re-run button, the periodic
schedule (last/next run), the outbox and the ClickHouse sink's lag. Permission
``jobs.manage`` as ``/api/admin/jobs``; everything comes from ``app.core.jobs_admin`` (RQ's
own registries, re-runs audited there: ``jobs.requeue``) and ``app.reports.sink``."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user
from redis.exceptions import RedisError

from app.blueprints.console.core import bp, console_view, is_htmx
from app.core import jobs_admin
from app.core.db import atomic
from app.core.errors import AppError
from app.core.i18n import translate_message
from app.reports import sink

REDIS_DOWN = "Redis is not reachable: queues and the schedule cannot be read right now."


@bp.get("/jobs")
@console_view("jobs.manage")
def jobs():
    try:
        data = {**jobs_admin.overview(limit=50), "analytics_sink": sink.status()}
    except RedisError:
        return render_template("console/jobs/overview.html", data=None, error=REDIS_DOWN), 503
    return render_template("console/jobs/overview.html", data=data, error=None)


@bp.get("/jobs/<string:job_id>")
@console_view("jobs.manage")
def job_detail(job_id: str):
    try:
        job = jobs_admin.detail(job_id)
    except RedisError:
        return render_template("console/jobs/overview.html", data=None, error=REDIS_DOWN), 503
    return render_template("console/jobs/detail.html", job=job)


@bp.post("/jobs/<string:job_id>/requeue")
@console_view("jobs.manage")
def job_requeue(job_id: str):
    """Re-run a failed job (the audit row commits with it, as in the API)."""
    job: dict[str, Any] | None
    try:
        with atomic():
            job = jobs_admin.requeue(job_id, actor=current_user)
    except AppError as exc:
        flash(
            _("Job %(id)s: %(reason)s", id=job_id, reason=translate_message(exc.message)), "error"
        )
        job = None
    except RedisError:
        flash(REDIS_DOWN, "error")
        job = None
    else:
        flash(
            _(
                "Job %(func)s (%(id)s) is queued again on %(queue)s.",
                func=job["func"],
                id=job_id,
                queue=job["queue"],
            ),
            "success",
        )
    if is_htmx():
        return render_template(
            "console/jobs/_failed_row.html", job=job, job_id=job_id, swapped=True
        )
    return redirect(url_for("console.jobs"))
