"""Responsible gaming: player limits, self-exclusion, time-outs, session time, reality checks.

Invariants (UKGC RTS 12/13 as reference):
* Lowering a limit (or setting a first one) binds at once. Raising or removing one only takes
  effect after ``RG_COOLING_OFF_HOURS`` (24 h); until then the old value binds and the pending
  change is shown. Setting the current value again cancels a pending change.
* Every applicable limit is checked; the lowest remaining headroom binds. Windows are rolling:
  daily = last 24 h, weekly = last 7 days, monthly = last 30 days.
* Loss = stakes - wins (refunds and rollbacks give stakes back), per currency, from the wallet
  ledger. Wager = stakes minus refunded stakes. Session time = minutes of play sessions.
* A self-excluded or timed-out player may log in, see balances and history and withdraw; the
  enforcement functions below refuse deposits, game launches, bets and promotions. A time-out
  ends by itself; a self-exclusion stays until lifted after it ran out (never silently).

Callers: payments (``check_deposit_allowed``), game launch (``check_game_launch_allowed``),
the provider bet callback (``check_bet_allowed``), promotions (``check_promotions_allowed``).
Each raises ``SelfExcluded`` or ``LimitExceeded`` and otherwise returns None.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, func, insert, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm.util import identity_key

from app.compliance.models import (
    LIMIT_PERIODS,
    LIMIT_TYPES,
    RgExclusion,
    RgLimit,
    RgSession,
    RgSettings,
)
from app.core import audit, events, opsettings
from app.core.base import utcnow
from app.core.db import atomic, in_atomic, lock_one, table_of
from app.core.errors import Conflict, LimitExceeded, NotFound, SelfExcluded, ValidationError
from app.core.extensions import db
from app.core.money import format_minor
from app.identity.models import User
from app.payments.deposits import counts_toward_limits
from app.payments.models import PaymentTransaction
from app.play.guard import PlayerBlocked
from app.wallet.models import LedgerTransaction as Ltx
from app.wallet.models import Wallet

PERIOD_WINDOWS = {
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=30),
}

SELF_EXCLUSION_DURATIONS: dict[str, timedelta | None] = {
    "24_hours": timedelta(hours=24),
    "7_days": timedelta(days=7),
    "1_month": timedelta(days=30),
    "6_months": timedelta(days=182),
    "1_year": timedelta(days=365),
    "5_years": timedelta(days=5 * 365),
    "permanent": None,
}

TIME_OUT_DURATIONS: dict[str, timedelta] = {
    "24_hours": timedelta(hours=24),
    "48_hours": timedelta(hours=48),
    "7_days": timedelta(days=7),
    "1_month": timedelta(days=30),
    "6_weeks": timedelta(weeks=6),
}

REALITY_CHECK_CHOICES = (15, 30, 45, 60, 90, 120)

#: Ledger types that count as play, and how they move the loss figure.
#: A tournament entry fee is a stake (its refund a ``refund``), a tournament prize a win.
_STAKE_TYPES = ("bet", "tournament_fee")
_RETURN_TYPES = ("refund", "rollback")
_WIN_TYPES = ("win", "jackpot_win", "tournament_prize")


def _cooling_off() -> timedelta:
    return timedelta(hours=int(opsettings.value("rg_cooling_off_hours")))


def _session_idle() -> timedelta:
    return timedelta(minutes=int(current_app.config.get("RG_SESSION_IDLE_MINUTES", 30)))


# --- limits -----------------------------------------------------------------------------------


def effective_value(limit: RgLimit, now: datetime | None = None) -> int | None:
    """What binds now: the pending change once its cooling-off is over, else the value."""
    now = now or utcnow()
    if limit.pending_effective_at is not None and limit.pending_effective_at <= now:
        return None if limit.pending_remove else limit.pending_value
    return limit.value


def _apply_due(limit: RgLimit, now: datetime) -> None:
    if limit.pending_effective_at is None or limit.pending_effective_at > now:
        return
    if limit.pending_remove:
        db.session.delete(limit)
        return
    limit.value = limit.pending_value or 0
    limit.pending_value = None
    limit.pending_effective_at = None


def limits_of(user_id: int) -> list[RgLimit]:
    return list(
        db.session.scalars(
            select(RgLimit)
            .where(RgLimit.user_id == user_id)
            .order_by(RgLimit.limit_type, RgLimit.period, RgLimit.currency)
        )
    )


def set_limit(
    user: User,
    *,
    limit_type: str,
    period: str,
    value: int | None,
    currency: str = "",
    actor: Any = None,
) -> dict[str, Any]:
    """Set, lower, raise or (``value=None``) remove one limit. Returns what happened."""
    if limit_type not in LIMIT_TYPES:
        raise ValidationError.field("type", f"Must be one of: {', '.join(LIMIT_TYPES)}")
    if period not in LIMIT_PERIODS:
        raise ValidationError.field("period", f"Must be one of: {', '.join(LIMIT_PERIODS)}")
    if limit_type == "session_time":
        currency = ""
        if value is not None and not 1 <= value <= 24 * 60 * 31:
            raise ValidationError.field("minutes", "Minutes must be between 1 and 44640")
    elif not currency:
        raise ValidationError.field("currency", "A currency is required for money limits")
    if value is not None and value <= 0 and limit_type != "session_time":
        raise ValidationError.field("amount", "A limit must be greater than zero")
    now = utcnow()
    with atomic():
        lock_one(User, User.id == user.id)  # one limit change at a time per player
        limit = db.session.scalar(
            select(RgLimit).where(
                RgLimit.user_id == user.id,
                RgLimit.limit_type == limit_type,
                RgLimit.period == period,
                RgLimit.currency == currency,
            )
        )
        if limit is not None:
            _apply_due(limit, now)
            db.session.flush()
            if sa_inspect(limit).deleted:  # a due removal just happened
                limit = None
        before = None if limit is None else {"value": limit.value}
        if limit is None:
            if value is None:
                raise NotFound("There is no such limit to remove")
            limit = RgLimit(
                user_id=user.id,
                limit_type=limit_type,
                period=period,
                currency=currency,
                value=value,
            )
            db.session.add(limit)
            outcome = "applied"
        elif value is not None and value <= limit.value:
            # Lower (or equal): protective, binds immediately and cancels any pending raise.
            limit.value = value
            limit.pending_value = None
            limit.pending_remove = False
            limit.pending_effective_at = None
            outcome = "applied"
        else:
            limit.pending_value = value
            limit.pending_remove = value is None
            limit.pending_effective_at = now + _cooling_off()
            outcome = "pending"
        db.session.flush()
        audit.record(
            "rg.limit.set",
            actor=actor or user,
            target_type="user",
            target_id=user.id,
            before=before,
            after={
                "type": limit_type,
                "period": period,
                "currency": currency,
                "value": value,
                "outcome": outcome,
                "effective_at": limit.pending_effective_at or now,
            },
        )
    return {"outcome": outcome, "limit": limit}


# --- exclusions ------------------------------------------------------------------------------


def _in_force(user_id: Any, now: Any) -> tuple[Any, ...]:
    """Conditions of an exclusion in force (plain values or ``bindparam()``s)."""
    return (
        RgExclusion.user_id == user_id,
        RgExclusion.lifted_at.is_(None),
        or_(
            RgExclusion.kind == "self_exclusion",
            RgExclusion.ends_at.is_(None),
            RgExclusion.ends_at > now,
        ),
    )


def active_exclusion(user_id: int, now: datetime | None = None) -> RgExclusion | None:
    """The exclusion in force: an unexpired time-out, or any self-exclusion not yet lifted."""
    now = now or utcnow()
    return db.session.scalar(
        select(RgExclusion)
        .where(*_in_force(user_id, now))
        .order_by(RgExclusion.ends_at.is_(None).desc(), RgExclusion.ends_at.desc())
        .limit(1)
    )


def _exclude(user: User, kind: str, duration: str, span: timedelta | None, reason: str | None):
    now = utcnow()
    with atomic():
        lock_one(User, User.id == user.id)
        ends_at = None if span is None else now + span
        current = active_exclusion(user.id, now)
        if current is not None and current.kind == "self_exclusion":
            if kind == "time_out":
                raise Conflict("You are already self-excluded")
            if current.ends_at is None or (ends_at is not None and ends_at <= current.ends_at):
                # Exclusions can be extended, never shortened.
                raise Conflict("You are already self-excluded for at least this long")
        row = RgExclusion(
            user_id=user.id,
            kind=kind,
            duration=duration,
            reason=reason,
            starts_at=now,
            ends_at=ends_at,
        )
        db.session.add(row)
        # Close play sessions: the player is out of the games from now on.
        for session in db.session.scalars(
            select(RgSession).where(
                RgSession.user_id == user.id, RgSession.last_seen_at > now - _session_idle()
            )
        ):
            session.last_seen_at = min(session.last_seen_at, now)
        db.session.flush()
        audit.record(
            f"rg.{kind}",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"duration": duration, "ends_at": ends_at},
            reason=reason,
        )
        events.publish(
            "notification",
            {
                "type": "responsible_gaming",
                "message": f"{kind.replace('_', ' ')} active",
                "kind": kind,
                "until": ends_at.isoformat() if ends_at else None,
            },
            room=events.user_room(user.id),
        )
    return row


def self_exclude(user: User, duration: str, reason: str | None = None) -> RgExclusion:
    if duration not in SELF_EXCLUSION_DURATIONS:
        raise ValidationError.field(
            "duration", f"Must be one of: {', '.join(SELF_EXCLUSION_DURATIONS)}"
        )
    return _exclude(user, "self_exclusion", duration, SELF_EXCLUSION_DURATIONS[duration], reason)


def time_out(user: User, duration: str, reason: str | None = None) -> RgExclusion:
    if duration not in TIME_OUT_DURATIONS:
        raise ValidationError.field("duration", f"Must be one of: {', '.join(TIME_OUT_DURATIONS)}")
    return _exclude(user, "time_out", duration, TIME_OUT_DURATIONS[duration], reason)


def lift_exclusion(exclusion_id: int, staff: User, reason: str) -> RgExclusion:
    """Admin reinstatement of a self-exclusion, only once its period has run out."""
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required")
    now = utcnow()
    with atomic():
        row = lock_one(RgExclusion, RgExclusion.id == exclusion_id)
        if row is None:
            raise NotFound("Exclusion not found")
        if row.lifted_at is not None:
            raise Conflict("This exclusion was already lifted")
        if row.ends_at is None or row.ends_at > now:
            raise Conflict("A self-exclusion can be lifted only after it has expired")
        row.lifted_at = now
        row.lifted_by_id = staff.id
        audit.record(
            "rg.exclusion.lift",
            actor=staff,
            target_type="user",
            target_id=row.user_id,
            before={"exclusion_id": row.id, "ends_at": row.ends_at},
            reason=reason.strip(),
        )
    return row


def _lift_minimum_end(row: RgExclusion) -> datetime:
    """When a self-exclusion's minimum period is over: its end, or for an indefinite one the
    start plus ``rg_indefinite_exclusion_minimum_days``."""
    if row.ends_at is not None:
        return row.ends_at
    return row.starts_at + timedelta(
        days=int(opsettings.value("rg_indefinite_exclusion_minimum_days"))
    )


def _lift_cooling(row: RgExclusion) -> timedelta:
    if row.ends_at is None:
        return timedelta(days=int(opsettings.value("rg_indefinite_exclusion_lift_cooling_days")))
    return timedelta(hours=int(opsettings.value("rg_exclusion_lift_cooling_hours")))


def _own_self_exclusion(user: User) -> RgExclusion:
    row = active_exclusion(user.id)
    if row is None or row.kind != "self_exclusion":
        raise NotFound("There is no self-exclusion to lift")
    locked = lock_one(RgExclusion, RgExclusion.id == row.id)
    assert locked is not None
    return locked


def request_lift(user: User) -> RgExclusion:
    """Step one of a player lifting their own self-exclusion (UKGC RTS 13): allowed once the
    minimum period is over; starts the cooling-off (24 h fixed-term / 7 days indefinite) after
    which ``confirm_lift`` lifts it. Asking again while a request runs changes nothing."""
    now = utcnow()
    with atomic():
        lock_one(User, User.id == user.id)
        row = _own_self_exclusion(user)
        earliest = _lift_minimum_end(row)
        if now < earliest:
            raise Conflict(
                "Your self-exclusion cannot be lifted before its minimum period has ended",
                reason="minimum_period",
                until=earliest.isoformat(),
            )
        if row.lift_requested_at is not None:
            return row
        row.lift_requested_at = now
        row.lift_confirmable_at = now + _lift_cooling(row)
        audit.record(
            "rg.exclusion.lift_requested",
            actor=user,
            target_type="user",
            target_id=user.id,
            after={"exclusion_id": row.id, "confirmable_at": row.lift_confirmable_at},
        )
    return row


def confirm_lift(user: User) -> RgExclusion:
    """Step two: the player confirms after the cooling-off; the self-exclusion is lifted."""
    now = utcnow()
    with atomic():
        lock_one(User, User.id == user.id)
        row = _own_self_exclusion(user)
        if row.lift_requested_at is None or row.lift_confirmable_at is None:
            raise Conflict("Ask to lift the self-exclusion first", reason="not_requested")
        if now < row.lift_confirmable_at:
            raise Conflict(
                "The cooling-off period has not ended yet",
                reason="cooling_off",
                until=row.lift_confirmable_at.isoformat(),
            )
        row.lifted_at = now
        row.lifted_by_id = user.id
        # An extended self-exclusion left its shorter, already ended rows behind: they end too.
        for older in db.session.scalars(
            select(RgExclusion).where(
                RgExclusion.user_id == user.id,
                RgExclusion.kind == "self_exclusion",
                RgExclusion.lifted_at.is_(None),
                RgExclusion.ends_at.is_not(None),
                RgExclusion.ends_at <= now,
            )
        ):
            older.lifted_at, older.lifted_by_id = now, user.id
        audit.record(
            "rg.exclusion.lift",
            actor=user,
            target_type="user",
            target_id=user.id,
            before={"exclusion_id": row.id, "ends_at": row.ends_at},
            after={"lifted_by": "player", "requested_at": row.lift_requested_at},
        )
    return row


# --- deposit-limit prompt (UKGC RTS 12A, PA 814a) -----------------------------------------------

PROMPT_ACTIONS = ("set", "declined")


def _has_deposit_limit(user_id: int) -> bool:
    return (
        db.session.scalar(
            select(RgLimit.id)
            .where(RgLimit.user_id == user_id, RgLimit.limit_type == "deposit")
            .limit(1)
        )
        is not None
    )


def _has_deposited(user_id: int) -> bool:
    return (
        db.session.scalar(
            select(PaymentTransaction.id)
            .where(
                PaymentTransaction.user_id == user_id,
                PaymentTransaction.type == "deposit",
                PaymentTransaction.status == "completed",
            )
            .limit(1)
        )
        is not None
    )


def deposit_limit_prompt(user_id: int) -> dict[str, Any]:
    """The prompt's state for the registration and deposit answers: ``due`` while the player
    neither answered it nor holds a deposit limit; ``blocks_deposit`` when a due prompt will
    refuse the first deposit (``deposit_limit_prompt_required``)."""
    row = db.session.get(RgSettings, user_id)
    answer = None if row is None else row.deposit_limit_prompt
    due = answer is None and not _has_deposit_limit(user_id)
    return {
        "due": due,
        "answer": answer,
        "answered_at": None if row is None else row.deposit_limit_prompt_at,
        "blocks_deposit": bool(
            due
            and opsettings.value("deposit_limit_prompt_required")
            and not _has_deposited(user_id)
        ),
    }


def answer_deposit_limit_prompt(
    user: User,
    action: str,
    *,
    amount_minor: int | None = None,
    period: str = "daily",
    currency: str = "",
) -> dict[str, Any]:
    """Record the player's answer to the prompt. ``set`` needs a deposit limit: the one given
    here (set through ``set_limit``, in the same transaction) or one already held."""
    if action not in PROMPT_ACTIONS:
        raise ValidationError.field("action", f"Must be one of: {', '.join(PROMPT_ACTIONS)}")
    with atomic():
        if action == "set":
            if amount_minor is not None:
                set_limit(
                    user,
                    limit_type="deposit",
                    period=period,
                    value=amount_minor,
                    currency=currency or user.currency,
                )
            elif not _has_deposit_limit(user.id):
                raise ValidationError.field("amount", "Give the deposit limit to set")
        elif amount_minor is not None:
            raise ValidationError.field("amount", "A declined prompt sets no limit")
        lock_one(User, User.id == user.id)
        row = db.session.get(RgSettings, user.id)
        if row is None:
            row = RgSettings(user_id=user.id)
            db.session.add(row)
        before = row.deposit_limit_prompt
        row.deposit_limit_prompt = action
        row.deposit_limit_prompt_at = utcnow()
        audit.record(
            "rg.deposit_limit_prompt",
            actor=user,
            target_type="user",
            target_id=user.id,
            before={"answer": before},
            after={"answer": action},
        )
        db.session.flush()
        return deposit_limit_prompt(user.id)


def exclusions_of(user_id: int) -> list[RgExclusion]:
    return list(
        db.session.scalars(
            select(RgExclusion).where(RgExclusion.user_id == user_id).order_by(RgExclusion.id)
        )
    )


def _raise_if_excluded(user: User, what: str) -> None:
    row = active_exclusion(user.id)
    if row is None:
        return
    until = row.ends_at.isoformat() if row.ends_at else None
    if row.kind == "time_out":
        raise SelfExcluded(
            f"You are taking a break until {until}: {what} is not available", until=until
        )
    raise SelfExcluded(f"Your account is self-excluded: {what} is not available", until=until)


# --- reality check ---------------------------------------------------------------------------


def set_reality_check(user: User, minutes: int | None) -> RgSettings:
    if minutes is not None and minutes not in REALITY_CHECK_CHOICES:
        raise ValidationError.field(
            "interval_minutes", f"Must be one of {REALITY_CHECK_CHOICES} or null (off)"
        )
    with atomic():
        row = db.session.get(RgSettings, user.id)
        if row is None:
            row = RgSettings(user_id=user.id)
            db.session.add(row)
        before = row.reality_check_minutes
        row.reality_check_minutes = minutes
        audit.record(
            "rg.reality_check",
            actor=user,
            target_type="user",
            target_id=user.id,
            before={"minutes": before},
            after={"minutes": minutes},
        )
    return row


def reality_check_minutes(user_id: int) -> int | None:
    row = db.session.get(RgSettings, user_id)
    return None if row is None else row.reality_check_minutes


# --- usage figures ----------------------------------------------------------------------------


def deposited_since(user_id: int, currency: str, since: datetime) -> int:
    """Deposits that count toward a limit: completed ones and those still open (pending and
    within their TTL; an expired one, paid by nobody, does not count)."""
    return int(
        db.session.execute(
            select(func.coalesce(func.sum(PaymentTransaction.amount_minor), 0)).where(
                PaymentTransaction.user_id == user_id,
                PaymentTransaction.type == "deposit",
                PaymentTransaction.currency == currency,
                counts_toward_limits(),
                PaymentTransaction.created_at >= since,
            )
        ).scalar_one()
    )


@dataclass(frozen=True)
class PlayTotals:
    stakes: int
    wins: int

    @property
    def loss(self) -> int:
        return self.stakes - self.wins


def play_totals(user_id: int, currency: str, since: datetime) -> PlayTotals:
    """Stakes and wins from the wallet ledger (cash + bonus legs) since ``since``."""
    moved = Ltx.cash_delta + Ltx.bonus_delta
    rows = db.session.execute(
        select(Ltx.type, func.coalesce(func.sum(moved), 0))
        .where(
            Ltx.user_id == user_id,
            Ltx.currency == currency,
            Ltx.created_at >= since,
            Ltx.type.in_(_STAKE_TYPES + _RETURN_TYPES + _WIN_TYPES),
        )
        .group_by(Ltx.type)
    ).all()
    by_type = {t: int(total) for t, total in rows}
    stakes = -sum(by_type.get(t, 0) for t in _STAKE_TYPES) - sum(
        by_type.get(t, 0) for t in _RETURN_TYPES
    )
    wins = sum(by_type.get(t, 0) for t in _WIN_TYPES)
    return PlayTotals(stakes=max(stakes, 0), wins=wins)


def session_minutes_since(user_id: int, since: datetime, now: datetime | None = None) -> int:
    now = now or utcnow()
    total = timedelta()
    for row in db.session.scalars(
        select(RgSession).where(RgSession.user_id == user_id, RgSession.last_seen_at >= since)
    ):
        start = max(row.started_at, since)
        end = min(row.last_seen_at, now)
        if end > start:
            total += end - start
    return int(total.total_seconds() // 60)


def _binding(user_id: int, limit_type: str, currency: str) -> list[tuple[RgLimit, int]]:
    now = utcnow()
    rows = db.session.scalars(
        select(RgLimit).where(
            RgLimit.user_id == user_id,
            RgLimit.limit_type == limit_type,
            RgLimit.currency == currency,
        )
    )
    out = []
    for row in rows:
        value = effective_value(row, now)
        if value is not None:
            out.append((row, value))
    return out


def _exceeded(limit: RgLimit, value: int, used: int, *, currency: str | None) -> LimitExceeded:
    details: dict[str, Any] = {
        "type": limit.limit_type,
        "period": limit.period,
        "limit": value,
        "used": used,
    }
    if currency:
        details = {
            "type": limit.limit_type,
            "period": limit.period,
            "currency": currency,
            "limit": format_minor(value, currency),
            "used": format_minor(used, currency),
            "remaining": format_minor(max(value - used, 0), currency),
        }
    return LimitExceeded(
        f"Your {limit.period} {limit.limit_type.replace('_', ' ')} limit would be exceeded",
        limit=details,
    )


def _check_session_time(user: User) -> None:
    now = utcnow()
    for limit, value in _binding(user.id, "session_time", ""):
        used = session_minutes_since(user.id, now - PERIOD_WINDOWS[limit.period], now)
        if used >= value:
            raise _exceeded(limit, value, used, currency=None)


def _touch_session(user: Any, *, start: bool) -> None:
    """Extend the player's open play session (last seen within the idle gap) or open one.

    One ``UPDATE ... RETURNING`` on the hot path (every bet callback runs this): the row lock it
    takes serializes two bets of one player like the ``SELECT ... FOR UPDATE`` it replaces.
    Inside a caller's transaction it joins it (no savepoint: it writes nothing that a refusal
    would have to undo). ``start`` is kept for the callers' intent; either way a player with no
    open session gets a new one (a bet can arrive after the idle gap).
    """
    now = utcnow()
    sessions = table_of(RgSession)
    s = sessions.c
    newest = (
        select(s.id)
        .where(s.user_id == user.id, s.last_seen_at > now - _session_idle())
        .order_by(s.last_seen_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    with contextlib.nullcontext() if in_atomic() else atomic():
        touched = db.session.execute(
            update(sessions).where(s.id == newest).values(last_seen_at=now).returning(s.id)
        ).scalar_one_or_none()
        if touched is None:
            db.session.execute(
                insert(sessions).values(user_id=user.id, started_at=now, last_seen_at=now)
            )
        else:
            _expire_session(touched)


def _expire_session(session_id: int) -> None:
    """Core UPDATEs bypass the ORM: drop a stale ``RgSession`` from the identity map."""
    obj = db.session.identity_map.get(identity_key(RgSession, session_id))
    if obj is not None:
        db.session.expire(obj)


# --- enforcement points ----------------------------------------------------------------------


def check_deposit_allowed(user: User, amount_minor: int, currency: str) -> None:
    """Refuse a deposit of ``amount_minor`` that an exclusion or a deposit limit forbids, and a
    first deposit while the deposit-limit prompt is unanswered (when that is required)."""
    _raise_if_excluded(user, "depositing")
    if deposit_limit_prompt(user.id)["blocks_deposit"]:
        raise Conflict(
            "Before your first deposit, set a deposit limit or decline the prompt "
            "(POST /api/responsible-gaming/deposit-limit-prompt)",
            reason="deposit_limit_prompt_required",
        )
    now = utcnow()
    for limit, value in _binding(user.id, "deposit", currency):
        used = deposited_since(user.id, currency, now - PERIOD_WINDOWS[limit.period])
        if used + amount_minor > value:
            raise _exceeded(limit, value, used, currency=currency)


def check_reopen_allowed(user_id: int) -> None:
    """``identity.closure.reopen_checks``: a closed account stays closed while its player is
    self-excluded (a time-out does not block re-opening)."""
    row = active_exclusion(user_id)
    if row is not None and row.kind == "self_exclusion":
        raise SelfExcluded(
            "The account is self-excluded: it cannot be reopened until the self-exclusion is "
            "lifted",
            until=row.ends_at.isoformat() if row.ends_at else None,
        )


def check_game_launch_allowed(user: User) -> None:
    """Refuse a real-money game launch while excluded, past a session-time limit or with a loss
    limit used up; otherwise open (or continue) the play session that session time counts."""
    _raise_if_excluded(user, "playing")
    _check_session_time(user)
    now = utcnow()
    for limit_type in ("loss", "wager"):
        for limit in db.session.scalars(
            select(RgLimit).where(RgLimit.user_id == user.id, RgLimit.limit_type == limit_type)
        ):
            value = effective_value(limit, now)
            if value is None:
                continue
            totals = play_totals(user.id, limit.currency, now - PERIOD_WINDOWS[limit.period])
            used = totals.loss if limit_type == "loss" else totals.stakes
            if used >= value:
                raise _exceeded(limit, value, used, currency=limit.currency)
    _touch_session(user, start=True)


def check_bet_allowed(
    user: Any, amount_minor: int, currency: str, *, state: Sequence[Any] | None = None
) -> None:
    """Refuse a bet an exclusion, a wager/loss limit or a session-time limit forbids.

    The loss check assumes the stake is lost (worst case), so a loss limit can never be passed.
    The bet callback maps ``SelfExcluded`` to PLAYER_BLOCKED and ``LimitExceeded`` to
    LIMIT_EXCEEDED. ``user`` needs only an ``id``. Every bet callback runs this: one query
    (:func:`bet_probe`, which the callback merges into its session lookup and passes as
    ``state``) says whether an exclusion or any limit that can bind a bet exists (most players
    have none); only then are they read.
    """
    now = utcnow()
    if state is None:
        state = tuple(db.session.execute(select(*bet_probe(user.id, currency, now))).one())
    excluded, limited = state[0], state[1]
    last_seen = state[2] if len(state) > 2 else None
    if excluded:
        _raise_if_excluded(user, "betting")
    session_limits, money_limits = _bet_limits(user.id, currency, now) if limited else ([], [])
    for limit, value in session_limits:
        used = session_minutes_since(user.id, now - PERIOD_WINDOWS[limit.period], now)
        if used >= value:
            raise _exceeded(limit, value, used, currency=None)
    totals_by_window: dict[str, PlayTotals] = {}
    for limit, value in money_limits:
        if limit.period not in totals_by_window:
            totals_by_window[limit.period] = play_totals(
                user.id, currency, now - PERIOD_WINDOWS[limit.period]
            )
        totals = totals_by_window[limit.period]
        used = totals.stakes if limit.limit_type == "wager" else max(totals.loss, 0)
        if used + amount_minor > value:
            raise _exceeded(limit, value, used, currency=currency)
    if last_seen is None or now - last_seen >= _touch_every():
        _touch_session(user, start=False)


def _touch_every() -> timedelta:
    """A bet extends the play session only when it was last extended this long ago: a player
    spinning every second costs one ``UPDATE`` per interval, not per bet, and session time
    (``session_minutes_since``) is short by at most this much."""
    return timedelta(seconds=int(current_app.config.get("RG_SESSION_TOUCH_SECONDS", 15)))


_BET_LIMIT_TYPES = ("session_time", "wager", "loss")


def bet_probe(user_id: Any, currency: Any, now: Any) -> tuple[ColumnElement[Any], ...]:
    """(exclusion in force?, any bet-binding limit?, when the play session was last extended)
    for ``play.guard`` to merge into the statement that reads the player (plain values,
    columns or ``bindparam()``s)."""
    return (
        select(RgExclusion.id).where(*_in_force(user_id, now)).exists(),
        select(RgLimit.id)
        .where(
            RgLimit.user_id == user_id,
            RgLimit.limit_type.in_(_BET_LIMIT_TYPES),
            or_(RgLimit.currency == currency, RgLimit.currency == ""),
        )
        .exists(),
        select(func.max(RgSession.last_seen_at))
        .where(RgSession.user_id == user_id)
        .scalar_subquery(),
    )


def _bet_limits(
    user_id: int, currency: str, now: datetime
) -> tuple[list[tuple[RgLimit, int]], list[tuple[RgLimit, int]]]:
    """(session-time limits, wager then loss limits in ``currency``) that bind now."""
    rows = db.session.scalars(
        select(RgLimit).where(
            RgLimit.user_id == user_id,
            RgLimit.limit_type.in_(_BET_LIMIT_TYPES),
            RgLimit.currency.in_(("", currency)),
        )
    )
    session_limits: list[tuple[RgLimit, int]] = []
    wager: list[tuple[RgLimit, int]] = []
    loss: list[tuple[RgLimit, int]] = []
    for row in rows:
        value = effective_value(row, now)
        if value is None:
            continue
        if row.limit_type == "session_time" and row.currency == "":
            session_limits.append((row, value))
        elif row.limit_type == "wager" and row.currency == currency:
            wager.append((row, value))
        elif row.limit_type == "loss" and row.currency == currency:
            loss.append((row, value))
    return session_limits, wager + loss


def check_promotions_allowed(user: User) -> None:
    """Excluded players receive no promotions."""
    _raise_if_excluded(user, "promotions")


def is_excluded(user_id: int) -> bool:
    return active_exclusion(user_id) is not None


# --- the player's overview -------------------------------------------------------------------


def overview(user: User) -> dict[str, Any]:
    """Limits (with usage and pending changes), exclusion state and reality check."""
    now = utcnow()
    items = []
    for limit in limits_of(user.id):
        value = effective_value(limit, now)
        if value is None:
            continue
        since = now - PERIOD_WINDOWS[limit.period]
        if limit.limit_type == "deposit":
            used = deposited_since(user.id, limit.currency, since)
        elif limit.limit_type == "session_time":
            used = session_minutes_since(user.id, since, now)
        else:
            totals = play_totals(user.id, limit.currency, since)
            used = max(totals.loss, 0) if limit.limit_type == "loss" else totals.stakes
        pending = None
        if limit.pending_effective_at is not None and limit.pending_effective_at > now:
            pending = {
                "value": None if limit.pending_remove else limit.pending_value,
                "remove": limit.pending_remove,
                "effective_at": limit.pending_effective_at,
            }
        items.append({"limit": limit, "value": value, "used": used, "pending": pending})
    exclusion = active_exclusion(user.id, now)
    return {
        "limits": items,
        "exclusion": exclusion,
        "reality_check_minutes": reality_check_minutes(user.id),
    }


# --- hooks into the money path ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PlayerRef:
    id: int


def bet_guard(
    user_id: int, amount_minor: int, currency: str, *, probed: Sequence[Any] | None = None
) -> None:
    """The provider bet callback's hook (probe: :func:`bet_probe`): an excluded player is
    PLAYER_BLOCKED; a limit breach stays ``LimitExceeded`` (the callback answers
    LIMIT_EXCEEDED)."""
    # The callback has just read the player (and their status) with the session: only the id
    # is needed here, so no User row is loaded on the hot path.
    try:
        check_bet_allowed(_PlayerRef(user_id), amount_minor, currency, state=probed)
    except SelfExcluded as exc:
        raise PlayerBlocked(exc.message) from None


def launch_guard(user_id: int) -> None:
    user = db.session.get(User, user_id)
    if user is not None:
        check_game_launch_allowed(user)


def session_results(user_id: int, since: datetime) -> list[dict[str, Any]]:
    """Per wallet currency: wagered, won and net since ``since`` (for reality checks)."""
    currencies = db.session.scalars(select(Wallet.currency).where(Wallet.user_id == user_id))
    results = []
    for currency in currencies:
        totals = play_totals(user_id, currency, since)
        if totals.stakes or totals.wins:
            results.append(
                {
                    "currency": currency,
                    "wagered": totals.stakes,
                    "won": totals.wins,
                    "net": totals.wins - totals.stakes,
                }
            )
    return results
