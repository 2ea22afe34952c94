"""The audit trail: append-only, keyed hash chain, written in the caller's transaction.

Invariants:
* ``record()`` joins the caller's transaction: the audit row exists iff the change does.
* Rows form a chain: ``hash = HMAC-SHA256(AUDIT_CHAIN_KEY, prev_hash + canonical(row))``,
  the key named by ``key_id`` (``app.core.chain``). Writers serialize on a PostgreSQL
  advisory lock so the chain never forks; ``verify()`` recomputes it. Rows written before
  the chain was keyed (``key_id`` NULL, plain SHA-256) verify only up to the ``legacy_until``
  id a signed checkpoint vouches for: a chain recomputed without the key does not verify.
* A signed checkpoint outside the database (``snapshot()``: count, last id, head hash)
  anchors the tail: rows deleted from the end no longer match it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import func, select, text

from app.core.base import utcnow
from app.core.chain import keyring
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


def _legacy_digest(prev_hash: str, row: AuditLog) -> str:
    """Rows written before the chain was keyed (``key_id`` NULL)."""
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
    ring = keyring()
    row.key_id = ring.current_id
    row.hash = ring.mac(row.prev_hash + _canonical(row))
    session.add(row)
    return row


@dataclass
class ChainReport:
    checked: int
    broken_at: int | None = None
    problem: str | None = None
    #: The last row verified (id, hash): what a checkpoint anchors.
    last_id: int = 0
    head: str = GENESIS
    #: Notes that are no failure (no checkpoint yet).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _check_row(row: AuditLog, prev: str, legacy_until: int) -> str | None:
    if row.prev_hash != prev:
        return "previous hash does not match (row removed?)"
    if row.key_id is None:
        if row.id > legacy_until:
            return (
                "row is not keyed (chain recomputed without AUDIT_CHAIN_KEY?) and no "
                "checkpoint vouches for it"
            )
        if _legacy_digest(prev, row) != row.hash:
            return "content does not match its hash (row altered)"
        return None
    verdict = keyring().matches(row.key_id, prev + _canonical(row), row.hash)
    if verdict is None:
        return f"signed with unknown key {row.key_id} (AUDIT_CHAIN_PREVIOUS_KEYS?)"
    if not verdict:
        return "content does not match its keyed hash (row altered or forged)"
    return None


def verify(
    batch: int = 5000,
    *,
    anchor: dict[str, Any] | None = None,
    after_id: int = 0,
    after_hash: str = GENESIS,
) -> ChainReport:
    """Recompute the chain (from the first row, or from ``after_id``/``after_hash``, the head
    of a checkpoint); report the first row that does not fit. ``anchor``: the ``audit``
    section of the latest checkpoint, whose count and head the rows must still hold."""
    legacy_until = int(anchor.get("legacy_until", 0)) if anchor else 0
    prev = after_hash
    checked = 0
    last_id = after_id
    while True:
        rows = db.session.scalars(
            select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            problem = _check_row(row, prev, legacy_until)
            if problem:
                return ChainReport(checked, row.id, problem, last_id, prev)
            prev = row.hash
            checked += 1
            last_id = row.id
    report = ChainReport(checked, last_id=last_id, head=prev)
    if anchor is None:
        report.notes.append("no checkpoint yet: a deleted tail cannot be detected")
        return report
    want_id, want_count = int(anchor["last_id"]), int(anchor["count"])
    if want_id:
        head = db.session.scalar(select(AuditLog.hash).where(AuditLog.id == want_id))
        if head != anchor["head"]:
            return ChainReport(
                checked,
                want_id,
                f"checkpoint head row #{want_id} is "
                + ("missing (tail deleted?)" if head is None else "different (rows replaced?)"),
                last_id,
                prev,
            )
    have = db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.id <= want_id))
    if have != want_count:
        return ChainReport(
            checked,
            want_id,
            f"checkpoint counted {want_count} rows up to #{want_id}, the table has {have}",
            last_id,
            prev,
        )
    return report


def snapshot(previous: dict[str, Any] | None, *, accept_legacy: bool = False) -> dict[str, Any]:
    """The ``audit`` section of a new checkpoint, after verifying the rows written since the
    ``previous`` one (the whole chain when there is none). Raises ``ChainBroken``."""
    if previous is None:
        legacy = db.session.scalar(select(func.max(AuditLog.id)).where(AuditLog.key_id.is_(None)))
        if legacy and not accept_legacy:
            raise ChainBroken(
                f"{legacy} is the last of rows written before the chain was keyed: check them "
                "(audit verify) and vouch for them once with `audit checkpoint --accept-legacy`"
            )
        anchor: dict[str, Any] = {
            "legacy_until": legacy or 0,
            "last_id": 0,
            "count": 0,
            "head": GENESIS,
        }
        report = verify(anchor={**anchor, "last_id": 0, "count": 0})
    else:
        anchor = previous
        report = verify(
            anchor=previous,
            after_id=int(previous["last_id"]),
            after_hash=str(previous["head"]) if previous["last_id"] else GENESIS,
        )
    if not report.ok:
        raise ChainBroken(f"audit row {report.broken_at}: {report.problem}")
    count = db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.id <= report.last_id))
    return {
        "count": count or 0,
        "last_id": report.last_id,
        "head": report.head,
        "legacy_until": int(anchor.get("legacy_until", 0)),
    }


class ChainBroken(RuntimeError):
    """A checkpoint would anchor a chain that does not verify."""
