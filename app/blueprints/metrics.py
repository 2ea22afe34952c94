"""``GET /metrics``: Prometheus exposition for SREs (docs/operations.md, "Metrics").

Not for the public: a caller needs ``Authorization: Bearer <METRICS_TOKEN>`` or an address in
``METRICS_ALLOW_IPS``, else 403. The figures a scrape reads anew (outbox backlog, lock waits,
RQ queues and workers) cost two queries and a few Redis reads per scrape, never per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Worker
from sqlalchemy import text

from app.core import errors, metrics, outbox
from app.core.extensions import client_ip, db, redis_store
from app.core.queues import QUEUE_NAMES, queue

bp = Blueprint("metrics", __name__)


def _outbox() -> Iterator[GaugeMetricFamily]:
    try:
        state = outbox.status()
    except Exception:
        errors.rollback_quietly()
        current_app.logger.warning("metrics: outbox status unavailable")
        return
    pending = GaugeMetricFamily("jackpotx_outbox_pending", "Outbox messages not yet delivered")
    pending.add_metric([], state["pending"])
    age = GaugeMetricFamily(
        "jackpotx_outbox_oldest_pending_seconds",
        "Age of the oldest undelivered outbox message (0: none)",
    )
    oldest = state["oldest_pending_at"]
    seconds = 0.0
    if oldest:
        then = datetime.fromisoformat(oldest)
        if then.tzinfo is None:
            then = then.replace(tzinfo=UTC)
        seconds = max(0.0, (datetime.now(UTC) - then).total_seconds())
    age.add_metric([], seconds)
    yield pending
    yield age


_LOCK_WAITS = text(
    "SELECT count(*), coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0) "
    "FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def _lock_waits() -> Iterator[GaugeMetricFamily]:
    """Connections of this database waiting for a lock now (a wallet row held by a stuck
    transaction shows here first), and how long the longest has waited. PostgreSQL only."""
    if db.engine.dialect.name != "postgresql":
        return
    try:
        with db.engine.connect() as conn:
            waiting, longest = conn.execute(_LOCK_WAITS).one()
    except Exception:
        current_app.logger.warning("metrics: lock waits unavailable")
        return
    count = GaugeMetricFamily(
        "jackpotx_db_lock_waiters", "Connections to this database waiting for a lock now"
    )
    count.add_metric([], waiting)
    age = GaugeMetricFamily(
        "jackpotx_db_lock_wait_longest_seconds",
        "How long the longest current lock wait has lasted (0: none)",
    )
    age.add_metric([], float(longest))
    yield count
    yield age


def _rq() -> Iterator[GaugeMetricFamily]:
    depth = GaugeMetricFamily(
        "jackpotx_job_queue_depth", "RQ jobs by queue and state", labels=["queue", "state"]
    )
    done = GaugeMetricFamily(
        "jackpotx_rq_worker_jobs",
        "Jobs run by the live RQ workers since each started, by outcome (read from Redis)",
        labels=["outcome"],
    )
    try:
        for name in QUEUE_NAMES:
            q = queue(name)
            depth.add_metric([name, "queued"], q.count)
            depth.add_metric([name, "started"], q.started_job_registry.count)
            depth.add_metric([name, "scheduled"], q.scheduled_job_registry.count)
            depth.add_metric([name, "failed"], q.failed_job_registry.count)
        workers = Worker.all(connection=redis_store.client())
        done.add_metric(["success"], sum(w.successful_job_count or 0 for w in workers))
        done.add_metric(["failure"], sum(w.failed_job_count or 0 for w in workers))
    except Exception:
        current_app.logger.warning("metrics: RQ figures unavailable")
        return
    yield depth
    yield done


class ScrapeCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _outbox()
        yield from _lock_waits()
        yield from _rq()

    def describe(self) -> list[Any]:
        return []


@bp.get("/metrics")
def scrape():
    if not current_app.config.get("METRICS_ENABLED", True):
        return errors.envelope(404, "NOT_FOUND", "Resource not found")
    if not metrics.allowed(client_ip(), request.headers.get("Authorization")):
        return errors.envelope(403, "ACCESS_DENIED", "Metrics are not public")
    body, content_type = metrics.render(ScrapeCollector())
    return Response(body, mimetype=None, content_type=content_type)
