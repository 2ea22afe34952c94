"""``/api/admin/jobs``: background queues, failed jobs and re-runs (permission ``jobs.manage``)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core import jobs_admin
from app.core.db import atomic
from app.core.schemas import envelope_of
from app.identity.auth import permission_required
from app.reports import sink

blp = Blueprint(
    "admin_jobs", __name__, url_prefix="/api/admin/jobs", description="Background jobs (staff)"
)


class JobSchema(Schema):
    id = fields.String()
    queue = fields.String()
    func = fields.String(allow_none=True)
    call = fields.String()
    status = fields.String()
    enqueued_at = fields.String(allow_none=True)
    started_at = fields.String(allow_none=True)
    ended_at = fields.String(allow_none=True)
    retries_left = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)


class JobDetailSchema(JobSchema):
    exc_info = fields.String(allow_none=True)


class JobQueueSchema(Schema):
    name = fields.String()
    queued = fields.Integer()
    started = fields.Integer()
    scheduled = fields.Integer()
    deferred = fields.Integer()
    failed_count = fields.Integer()
    failed = fields.List(fields.Nested(JobSchema))


class OutboxStatusSchema(Schema):
    pending = fields.Integer()
    oldest_pending_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    attempts = fields.Integer()


class PeriodicSchema(Schema):
    id = fields.String()
    func = fields.String(allow_none=True)
    queue = fields.String(allow_none=True)
    interval_seconds = fields.Integer(allow_none=True)
    configured = fields.Boolean()
    scheduled = fields.Boolean()
    next_run_at = fields.String(allow_none=True)
    last_run_at = fields.String(allow_none=True)
    last_status = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)


class SchedulerSchema(Schema):
    alive = fields.Boolean(metadata={"description": "a scheduler ticked in the last seconds"})
    name = fields.String(allow_none=True, metadata={"description": "host:pid of the latest"})
    last_tick_at = fields.String(allow_none=True)
    mode = fields.String(
        metadata={
            "description": "in-process: the embedded server runs each due job itself (no "
            "REDIS_URL); worker: worker.py's scheduler enqueues them for its RQ worker"
        }
    )
    where = fields.String(metadata={"description": "one sentence for staff: where jobs run"})


class SinkStreamSchema(Schema):
    stream = fields.String()
    table = fields.String(metadata={"description": "the ClickHouse table it fills"})
    append_only = fields.Boolean()
    mark_ts = fields.String(allow_none=True, metadata={"description": "high-water mark"})
    mark_id = fields.Integer()
    exported_rows = fields.Integer()
    batches = fields.Integer()
    behind = fields.Integer(
        allow_none=True,
        metadata={"description": "source rows (or row changes) not exported; null: sink off"},
    )
    behind_capped = fields.Boolean(metadata={"description": "behind is a lower bound"})
    oldest_unexported_at = fields.String(allow_none=True)
    lag_seconds = fields.Float(
        allow_none=True, metadata={"description": "age of the oldest unexported row"}
    )
    last_batch_at = fields.String(allow_none=True)
    last_run_at = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_error_at = fields.String(allow_none=True)
    missed = fields.Integer(allow_none=True)


class AnalyticsSinkSchema(Schema):
    enabled = fields.Boolean(metadata={"description": "CLICKHOUSE_URL is set"})
    target = fields.String(allow_none=True, metadata={"description": "the URL, no password"})
    settle_seconds = fields.Integer()
    batch = fields.Integer()
    streams = fields.List(fields.Nested(SinkStreamSchema))


class OverviewSchema(Schema):
    queues = fields.List(fields.Nested(JobQueueSchema))
    outbox = fields.Nested(OutboxStatusSchema)
    analytics_sink = fields.Nested(
        AnalyticsSinkSchema, metadata={"description": "the ClickHouse event sink and its lag"}
    )
    scheduler = fields.Nested(SchedulerSchema)
    periodic = fields.List(fields.Nested(PeriodicSchema))


class OverviewArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=0, max=500))


@blp.route("")
class JobOverview(MethodView):
    @permission_required("jobs.manage")
    @blp.arguments(OverviewArgs, location="query")
    @blp.response(200, envelope_of(OverviewSchema))
    def get(self, args):
        """Queues with counts and their newest failed jobs (error summary), outbox, the periodic
        scheduler and each periodic job's last and next run; the ClickHouse sink's lag."""
        return {
            "data": {**jobs_admin.overview(limit=args["limit"]), "analytics_sink": sink.status()}
        }


@blp.route("/<string:job_id>")
class JobDetail(MethodView):
    @permission_required("jobs.manage")
    @blp.response(200, envelope_of(JobDetailSchema))
    def get(self, job_id: str):
        """One job with its full traceback."""
        return {"data": jobs_admin.detail(job_id)}


@blp.route("/<string:job_id>/requeue")
class JobRequeue(MethodView):
    @permission_required("jobs.manage")
    @blp.response(200, envelope_of(JobSchema))
    def post(self, job_id: str):
        """Re-run a failed job (audited)."""
        with atomic():
            data = jobs_admin.requeue(job_id, actor=g.user)
        return {"data": data}
