"""AML / risk flags: signals for staff review, never automatic decisions.

Invariants: a flag is written in the transaction of the event that raised it (or, for refused
webhooks, in its own transaction after the refusal); flags are listed for ``risk.read`` staff
and closed with a review note, audited.

Rules: a large single deposit or withdrawal (``AML_LARGE_*``), deposit velocity (``AML_VELOCITY_*``
completed deposits in the window), a withdrawal after deposits with little play (wagered less
than ``AML_MIN_PLAY_PERCENT`` % of what was deposited since the previous withdrawal), and gateway
webhooks whose amount or currency differ from ours.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from app.compliance.models import RiskFlag
from app.compliance.responsible_gaming import play_totals
from app.core import audit, events, opsettings
from app.core.base import utcnow
from app.core.db import atomic, lock_one, page_of
from app.core.errors import Conflict, NotFound
from app.core.extensions import db
from app.core.money import format_minor
from app.payments.models import PaymentTransaction


def flag(
    kind: str,
    *,
    user_id: int | None,
    reference: str | None = None,
    severity: str = "medium",
    details: dict[str, Any] | None = None,
) -> RiskFlag:
    row = RiskFlag(
        user_id=user_id, kind=kind, severity=severity, reference=reference, details=details
    )
    db.session.add(row)
    events.publish(
        "admin.notification",
        {"type": "risk_flag", "kind": kind, "user_id": user_id, "reference": reference},
        room="admin",
    )
    return row


def _cfg(name: str) -> int:
    return int(opsettings.value(name.lower()))


def on_deposit_completed(txn: PaymentTransaction) -> None:
    ref = f"payment:{txn.public_id}"
    if txn.amount_minor >= _cfg("AML_LARGE_DEPOSIT"):
        flag(
            "large_deposit",
            user_id=txn.user_id,
            reference=ref,
            details={
                "amount": format_minor(txn.amount_minor, txn.currency),
                "currency": txn.currency,
            },
        )
    window = timedelta(minutes=_cfg("AML_VELOCITY_WINDOW_MINUTES"))
    count = db.session.scalar(
        select(func.count(PaymentTransaction.id)).where(
            PaymentTransaction.user_id == txn.user_id,
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
            PaymentTransaction.processed_at >= utcnow() - window,
        )
    )
    # Flag when the threshold is reached, once per crossing (not on every later deposit).
    if count == _cfg("AML_VELOCITY_COUNT"):
        flag(
            "deposit_velocity",
            user_id=txn.user_id,
            reference=ref,
            details={"deposits": count, "window_minutes": _cfg("AML_VELOCITY_WINDOW_MINUTES")},
        )


def on_withdrawal_requested(txn: PaymentTransaction) -> None:
    ref = f"payment:{txn.public_id}"
    if txn.amount_minor >= _cfg("AML_LARGE_WITHDRAWAL"):
        flag(
            "large_withdrawal",
            user_id=txn.user_id,
            reference=ref,
            details={
                "amount": format_minor(txn.amount_minor, txn.currency),
                "currency": txn.currency,
            },
        )
    previous = db.session.scalar(
        select(func.max(PaymentTransaction.created_at)).where(
            PaymentTransaction.user_id == txn.user_id,
            PaymentTransaction.type == "withdrawal",
            PaymentTransaction.id != txn.id,
            PaymentTransaction.status.notin_(("rejected", "cancelled")),
        )
    )
    since = previous  # None: every deposit so far counts
    deposit_filter = [
        PaymentTransaction.user_id == txn.user_id,
        PaymentTransaction.type == "deposit",
        PaymentTransaction.status == "completed",
        PaymentTransaction.currency == txn.currency,
    ]
    if since is not None:
        deposit_filter.append(PaymentTransaction.processed_at >= since)
    deposited = int(
        db.session.execute(
            select(func.coalesce(func.sum(PaymentTransaction.amount_minor), 0)).where(
                *deposit_filter
            )
        ).scalar_one()
    )
    if deposited <= 0:
        return
    first_deposit = db.session.scalar(
        select(func.min(PaymentTransaction.processed_at)).where(*deposit_filter)
    )
    # Completing a deposit stamps processed_at; a row without one has no play to measure
    # from, so it counts as none played and the withdrawal is flagged for review.
    wagered = (
        0 if first_deposit is None else play_totals(txn.user_id, txn.currency, first_deposit).stakes
    )
    if wagered * 100 < deposited * _cfg("AML_MIN_PLAY_PERCENT"):
        flag(
            "deposit_withdrawal_little_play",
            user_id=txn.user_id,
            reference=ref,
            details={
                "currency": txn.currency,
                "deposited": format_minor(deposited, txn.currency),
                "wagered": format_minor(wagered, txn.currency),
                "withdrawal": format_minor(txn.amount_minor, txn.currency),
            },
        )


def list_flags(
    *, status: str | None = None, user_id: int | None = None, page: int = 1, limit: int = 20
) -> tuple[list[RiskFlag], int]:
    query = select(RiskFlag)
    if status:
        query = query.where(RiskFlag.status == status)
    if user_id:
        query = query.where(RiskFlag.user_id == user_id)
    return page_of(query, RiskFlag.id.desc(), page=page, limit=limit)


def review_flag(flag_id: int, staff: Any, *, status: str, note: str | None) -> RiskFlag:
    if status not in ("reviewed", "dismissed"):
        raise Conflict("A flag is closed as reviewed or dismissed")
    with atomic():
        row = lock_one(RiskFlag, RiskFlag.id == flag_id)
        if row is None:
            raise NotFound("Risk flag not found")
        if row.status != "open":
            raise Conflict("This flag is already closed")
        row.status = status
        row.reviewed_by_id = staff.id
        row.reviewed_at = utcnow()
        audit.record(
            "risk.flag.review",
            actor=staff,
            target_type="risk_flag",
            target_id=row.id,
            after={"status": status},
            reason=note,
        )
    return row
