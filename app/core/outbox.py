"""The transactional outbox: events and jobs that must survive a Redis outage.

Invariants:
* ``add_event`` / ``add_job`` write a row in the caller's transaction, so the message exists
  iff the business change committed, whatever Redis is doing at that moment.
* ``relay()`` hands undelivered rows to Redis in id order, one relay at a time (a PostgreSQL
  advisory lock; others return at once), and stops at the first Redis failure, so messages
  keep their order and none is skipped. A row is marked delivered only after Redis accepted
  it: delivery is at-least-once (a crash in between re-sends), consumers are idempotent.
* After each commit that wrote rows, the outbox is relayed at once (fast path); the periodic
  ``relay_outbox`` job drains whatever that could not deliver (Redis down).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, select, text

from app.core import queues
from app.core.base import utcnow
from app.core.breaker import redis_breaker
from app.core.bus import Event, deliver
from app.core.db import atomic, in_atomic, on_commit
from app.core.extensions import db
from app.core.models import OutboxMessage

log = logging.getLogger(__name__)

_ADVISORY_LOCK_KEY = 0x4A58_4F42  # "JXOB"


@dataclass
class RelayReport:
    delivered: int = 0
    pending: int = 0
    error: str | None = None
    #: Another relay held the lock; it delivers what this one would have.
    skipped: bool = False


def _checked_json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serializable: {exc}") from None


def _fast_path() -> None:
    # Redis failed a moment ago: leave the rows to the periodic relay instead of making
    # every committing request wait for Redis again.
    if redis_breaker.allows():
        relay()


def _add(
    kind: str, name: str, target: str | None, payload: Any, *, relay_now: bool = True
) -> OutboxMessage:
    if not in_atomic():
        raise RuntimeError("outbox rows belong to a business transaction: use atomic()")
    row = OutboxMessage(kind=kind, name=name, target=target, payload=payload, attempts=0)
    db.session.add(row)
    # One fast-path relay per transaction (the list is dropped on rollback, so this stays
    # accurate across savepoints and failed transactions).
    if relay_now and _fast_path not in db.session().info.get("jx_on_commit", []):
        on_commit(_fast_path)
    return row


def add_event(
    name: str, data: dict[str, Any], *, room: str | None = None, relay_now: bool = True
) -> OutboxMessage:
    """A Socket.IO event that must reach Redis even if Redis is down right now.

    ``relay_now=False`` leaves the row to the periodic relay of another process: the embedded
    default's command line, whose own relay would hand the event to no Socket.IO server (it
    has no Redis channel to the ``make run`` server; that server's relay delivers it)."""
    return _add("event", name, room, _checked_json(data, "event data"), relay_now=relay_now)


def add_job(func: str, *args: Any, queue: str = "default", **kwargs: Any) -> OutboxMessage:
    """An RQ job (``func`` as a dotted path, ids as arguments) enqueued once Redis takes it."""
    if not isinstance(func, str) or "." not in func:
        raise ValueError("jobs are named by their dotted path, e.g. 'app.core.jobs.relay_outbox'")
    payload = _checked_json({"args": list(args), "kwargs": kwargs}, "job arguments")
    return _add("job", func, queue, payload)


def _deliver(row: OutboxMessage) -> None:
    if row.kind == "event":
        deliver(Event(name=row.name, data=row.payload, room=row.target), strict=True)
        return
    # A fixed job id: a re-sent row does not create a second job while the first is queued.
    queues.enqueue(
        row.name,
        *row.payload.get("args", []),
        queue_name=row.target or "default",
        job_id=f"outbox-{row.id}",
        **row.payload.get("kwargs", {}),
    )


def relay(limit: int = 500) -> RelayReport:
    """Deliver pending rows in order; stop at the first Redis failure (its own transaction)."""
    report = RelayReport()
    with atomic() as session:
        if session.get_bind().dialect.name == "postgresql":
            got = session.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY}
            ).scalar()
            if not got:
                report.skipped = True
                return report
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None))
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
        for row in rows:
            row.attempts += 1
            try:
                _deliver(row)
            except RedisError as exc:
                redis_breaker.failed(exc)
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                report.error = row.last_error
                log.warning("outbox relay stopped at #%s: %s", row.id, row.last_error)
                break
            row.delivered_at = utcnow()
            row.last_error = None
            report.delivered += 1
        report.pending = len(rows) - report.delivered
    if report.delivered and report.error is None:
        redis_breaker.succeeded()
    return report


def drain(max_batches: int = 100, batch: int = 500) -> RelayReport:
    """Relay until nothing is pending, Redis fails, or ``max_batches`` ran."""
    total = RelayReport()
    for _ in range(max_batches):
        report = relay(batch)
        total.delivered += report.delivered
        total.error, total.skipped = report.error, report.skipped
        if report.error or report.skipped or report.delivered < batch:
            break
    total.pending = pending_count()
    return total


def pending_count() -> int:
    return db.session.execute(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
    ).scalar_one()


def status() -> dict[str, Any]:
    """What the staff job page shows: how much is waiting, since when, and why."""
    oldest: OutboxMessage | None = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.delivered_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(1)
    ).first()
    oldest_at: datetime | None = oldest.created_at if oldest else None
    return {
        "pending": pending_count(),
        "oldest_pending_at": oldest_at.isoformat() if oldest_at else None,
        "last_error": oldest.last_error if oldest else None,
        "attempts": oldest.attempts if oldest else 0,
    }
