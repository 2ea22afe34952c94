"""The audit trail: append-only, hash-chained, written in the caller's transaction.

Invariants:
* ``record()`` joins the caller's transaction: the audit row exists iff the change does.
* Rows form a chain: ``hash = sha256(prev_hash + canonical(row))``. Writers serialize on a
  PostgreSQL advisory lock so the chain never forks; ``verify()`` recomputes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import select, text

from app.core.base import utcnow
from app.core.extensions import db
from app.core.models import AuditLog
from app.core.observability import correlation_id

GENESIS = "0" * 64
_ADVISORY_LOCK_KEY = 0x4A58_4155  # "JXAU"


def _canonical(row: AuditLog) -> str:
    payload = {
        "created_at": row.created_at.isoformat(),
        "actor_id": row.actor_id,
        "actor_role": row.actor_role,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "before": row.before,
        "after": row.after,
        "reason": row.reason,
        "ip": row.ip,
        "user_agent": row.user_agent,
        "correlation_id": row.correlation_id,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def _digest(prev_hash: str, row: AuditLog) -> str:
    return hashlib.sha256((prev_hash + _canonical(row)).encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def record(
    action: str,
    *,
    actor: Any = None,
    target_type: str | None = None,
    target_id: Any = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> AuditLog:
    """Append one audit row in the current transaction (the caller commits)."""
    session = db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
    prev = session.execute(
        select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1)
    ).scalar_one_or_none()
    ip = user_agent = None
    if has_request_context():
        ip = request.remote_addr
        user_agent = (request.user_agent.string or "")[:500] or None
    actor_id = getattr(actor, "id", actor)
    role = getattr(getattr(actor, "role", None), "name", None)
    row = AuditLog(
        created_at=utcnow(),
        actor_id=actor_id,
        actor_role=role or (None if actor_id else "system"),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_jsonable(before),
        after=_jsonable(after),
        reason=reason,
        ip=ip,
        user_agent=user_agent,
        correlation_id=(g.get("correlation_id") if has_request_context() else None)
        or (correlation_id.get() if correlation_id.get() != "-" else None),
        prev_hash=prev or GENESIS,
    )
    row.hash = _digest(row.prev_hash, row)
    session.add(row)
    return row


@dataclass
class ChainReport:
    checked: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(batch: int = 5000) -> ChainReport:
    """Recompute the chain from the first row; report the first row that does not fit."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch)
        ).all()
        if not rows:
            return ChainReport(checked)
        for row in rows:
            if row.prev_hash != prev:
                return ChainReport(checked, row.id, "previous hash does not match (row removed?)")
            if _digest(prev, row) != row.hash:
                return ChainReport(checked, row.id, "content does not match its hash (row altered)")
            prev = row.hash
            checked += 1
            last_id = row.id
