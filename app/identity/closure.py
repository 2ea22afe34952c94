"""Self-service account closure and re-opening (distinct from self-exclusion).

Invariants:
* A player closes their own account with a reason and their password: status ``closed``
  (``status_reason = "player_closure"``), ``closed_at`` and ``closure_reason`` recorded, every
  session revoked and every token issued so far cut off, audited, in one transaction. The same
  rules as erasure apply first (``gdpr.erasure_checks``: no money held, no open withdrawal).
* A closed account reopens only by staff (``reopen_by_staff``: audited with a reason) or by the
  player signing in with ``reopen`` once ``account_reopen_cooling_days`` have passed
  (``reopen_problem``/``reopen``, inside the sign-in's transaction). Neither while a
  ``reopen_checks`` hook refuses (an active self-exclusion: ``app.hooks``), and never an erased
  account or one closed for another reason (staff decisions use ban/suspend/reactivate).
* Identity imports no higher domain: the self-exclusion check arrives through ``reopen_checks``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from app.core import audit, opsettings
from app.core.base import utcnow
from app.core.db import atomic, lock_existing
from app.core.errors import AccessDenied, AppError, Conflict, NotFound, ValidationError
from app.core.events import publish, user_room
from app.core.extensions import db
from app.core.registry import Hooks
from app.identity import gdpr, passwords
from app.identity.models import PLAYER, TokenFamily, User

#: Why a player closes their account (the reason is kept for the operator's reports).
CLOSURE_REASONS = (
    "not_interested",
    "too_much_time_or_money",
    "another_operator",
    "dissatisfied",
    "privacy",
    "other",
)
PLAYER_CLOSURE = "player_closure"

#: ``check(user_id)`` raises to refuse re-opening (an active self-exclusion).
reopen_checks: Hooks[[int]] = Hooks()

#: What the erasure checks refuse with, said for a closure.
_CLOSURE_WORDING = {
    "positive_balance": "Withdraw your balance before closing your account",
    "pending_withdrawal": "A withdrawal is still pending; close the account once it is settled",
}


def close_account(user: User, *, reason: str, password: str | None, comment: str | None = None):
    """Close the player's own account (see the module invariants)."""
    if user.role_id != PLAYER:
        raise ValidationError("Only player accounts can be closed here")
    if reason not in CLOSURE_REASONS:
        raise ValidationError.field("reason", f"Must be one of: {', '.join(CLOSURE_REASONS)}")
    if user.has_password and not passwords.verify_password(user.password_hash, password or ""):
        raise ValidationError.field("password", "The password is not correct")
    now = utcnow()
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.status == "closed":
            raise Conflict("This account is already closed")
        try:
            gdpr.erasure_checks(user.id)
        except Conflict as exc:
            why = exc.extra.get("reason")
            raise Conflict(_CLOSURE_WORDING.get(str(why), exc.message), reason=why) from None
        before = {"status": user.status}
        text = (comment or "").strip()[:400]
        user.status, user.status_reason, user.status_until = "closed", PLAYER_CLOSURE, None
        user.closed_at = now
        user.closure_reason = reason + (f": {text}" if text else "")
        # Every session ends and every token issued until now stops working.
        db.session.execute(
            update(TokenFamily)
            .where(TokenFamily.user_id == user.id, TokenFamily.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="account_closed")
        )
        user.tokens_valid_after = now
        audit.record(
            "user.closed",
            actor=user,
            target_type="user",
            target_id=user.id,
            before=before,
            after={"status": "closed", "reason": reason},
            reason=text or None,
        )
        publish("session.logout", {"reason": "account_closed"}, room=user_room(user.id))
    return user


def reopenable_at(user: User) -> datetime | None:
    """When the player may reopen the account themselves; None if they never may."""
    if user.status != "closed" or user.status_reason != PLAYER_CLOSURE or user.erased_at:
        return None
    days = int(opsettings.value("account_reopen_cooling_days"))
    return (user.closed_at or utcnow()) + timedelta(days=days)


def reopen_problem(user: User, now: datetime | None = None) -> AppError | None:
    """Why the player may not reopen the account now (None: they may)."""
    now = now or utcnow()
    when = reopenable_at(user)
    if when is None:
        return AccessDenied("This account is closed", reason=user.status_reason)
    if now < when:
        return AccessDenied(
            f"This account was closed; it can be reopened from {when.isoformat()}",
            reason="reopen_cooling_off",
            until=when.isoformat(),
        )
    try:
        reopen_checks(user.id)
    except AppError as exc:
        return exc
    return None


def _reopen(user: User, actor: User, reason: str | None, by: str) -> None:
    before = {"status": user.status, "closed_at": user.closed_at, "closure": user.closure_reason}
    user.status, user.status_reason, user.status_until = "active", None, None
    user.closed_at, user.closure_reason = None, None
    audit.record(
        "user.reopened",
        actor=actor,
        target_type="user",
        target_id=user.id,
        before=before,
        after={"status": "active", "by": by},
        reason=reason,
    )


def reopen(user: User) -> None:
    """The player reopens at sign-in (caller's transaction; ``reopen_problem`` said yes)."""
    _reopen(user, user, None, "player")


def reopen_by_staff(player_id: int, *, actor: User, reason: str | None) -> User:
    """Staff reopen a closed account (not an erased one, not while self-excluded)."""
    text = (reason or "").strip()
    if len(text) < 3:
        raise ValidationError.field("reason", "Give a reason (at least 3 characters)")
    if not actor.is_staff or not actor.can("players.manage"):
        raise AccessDenied("You do not have permission to do this")
    with atomic():
        user = db.session.get(User, player_id)
        if user is None or user.role_id != PLAYER:
            raise NotFound("Player not found")
        user = lock_existing(User, User.id == player_id)
        if user.status != "closed":
            raise Conflict(f"A {user.status} account cannot be reopened")
        if user.erased_at is not None:
            raise Conflict("An erased account cannot be reopened")
        reopen_checks(user.id)
        _reopen(user, actor, text[:500], "staff")
    return user
