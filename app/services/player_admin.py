"""Staff decisions on player accounts: ban, suspend, reactivate, force logout.

Invariants:
* Each decision is one transaction: the player row is locked, the status transition is
  checked, the change and its audit row (actor, reason, before/after) commit together.
* Ban, suspend and force logout revoke every token at once (``tokens_valid_after = now``) and
  push ``session.logout`` to the player's room after commit.
* A reason is mandatory; only player accounts are handled here (staff have their own screens).

The identity branch exposes the same decisions on the JSON API (``/api/admin/users/...``); the
functions here are the shared service both front ends call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.db import atomic, lock_one
from app.errors import Conflict, NotFound, ValidationError
from app.events import publish, user_room
from app.models.base import utcnow
from app.models.user import PLAYER, User
from app.services import audit

#: Suspension lengths offered to staff; ``None`` = until lifted.
SUSPENSION_CHOICES: dict[str, timedelta | None] = {
    "indefinite": None,
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
MAX_REASON = 500


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if len(text) < 3:
        raise ValidationError.field("reason", "Give a reason (at least 3 characters)")
    if len(text) > MAX_REASON:
        raise ValidationError.field("reason", f"Keep the reason under {MAX_REASON} characters")
    return text


def _locked_player(player_id: int) -> User:
    user = lock_one(User, User.id == player_id)
    if user is None or user.role_id != PLAYER:
        raise NotFound("Player not found")
    return user


def _snapshot(user: User) -> dict:
    return {
        "status": user.status,
        "status_reason": user.status_reason,
        "status_until": user.status_until.isoformat() if user.status_until else None,
    }


def _revoke_sessions(user: User, reason: str) -> None:
    user.tokens_valid_after = utcnow()
    publish("session.logout", {"reason": reason}, room=user_room(user.id))


def _change_status(
    player_id: int,
    *,
    action: str,
    new_status: str,
    allowed_from: tuple[str, ...],
    actor: User,
    reason: str | None,
    until: datetime | None = None,
    revoke: bool,
) -> User:
    text = _reason(reason)
    with atomic():
        user = _locked_player(player_id)
        if user.status not in allowed_from:
            raise Conflict(f"A {user.status} account cannot be changed this way")
        before = _snapshot(user)
        user.status = new_status
        user.status_reason = None if new_status == "active" else text
        user.status_until = until
        if new_status == "active":
            user.failed_logins = 0
            user.locked_until = None
        if revoke:
            _revoke_sessions(user, new_status)
        audit.record(
            action,
            actor=actor,
            target_type="user",
            target_id=user.id,
            before=before,
            after=_snapshot(user),
            reason=text,
        )
    return user


def ban_player(player_id: int, *, actor: User, reason: str | None) -> User:
    return _change_status(
        player_id,
        action="player.ban",
        new_status="banned",
        allowed_from=("active", "suspended", "locked"),
        actor=actor,
        reason=reason,
        revoke=True,
    )


def suspend_player(
    player_id: int, *, actor: User, reason: str | None, duration: str = "indefinite"
) -> User:
    if duration not in SUSPENSION_CHOICES:
        raise ValidationError.field("duration", "Unknown suspension length")
    length = SUSPENSION_CHOICES[duration]
    return _change_status(
        player_id,
        action="player.suspend",
        new_status="suspended",
        allowed_from=("active", "locked"),
        actor=actor,
        reason=reason,
        until=utcnow() + length if length else None,
        revoke=True,
    )


def reactivate_player(player_id: int, *, actor: User, reason: str | None) -> User:
    return _change_status(
        player_id,
        action="player.reactivate",
        new_status="active",
        allowed_from=("suspended", "banned", "locked"),
        actor=actor,
        reason=reason,
        revoke=False,
    )


def force_logout_player(player_id: int, *, actor: User, reason: str | None) -> User:
    text = _reason(reason)
    with atomic():
        user = _locked_player(player_id)
        before = user.tokens_valid_after.isoformat() if user.tokens_valid_after else None
        _revoke_sessions(user, "force_logout")
        audit.record(
            "player.force_logout",
            actor=actor,
            target_type="user",
            target_id=user.id,
            before={"tokens_valid_after": before},
            after={"tokens_valid_after": user.tokens_valid_after.isoformat()},
            reason=text,
        )
    return user


#: The decisions the console offers, by URL name: (service, label, permission).
ACTIONS = {
    "ban": (ban_player, "Ban", "players.manage"),
    "suspend": (suspend_player, "Suspend", "players.manage"),
    "reactivate": (reactivate_player, "Reactivate", "players.manage"),
    "force-logout": (force_logout_player, "Force logout", "players.manage"),
}


def available_actions(user: User) -> list[str]:
    """Which decisions make sense for the player's current status."""
    names = []
    if user.status in ("active", "locked"):
        names.append("suspend")
    if user.status in ("active", "suspended", "locked"):
        names.append("ban")
    if user.status in ("suspended", "banned", "locked"):
        names.append("reactivate")
    names.append("force-logout")
    return names
