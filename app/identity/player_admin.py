"""The back office's player decisions, on top of the staff actions the JSON API uses.

Invariants: every decision goes through ``app.identity.staff_actions`` (row lock, token
revocation, ``session.logout``, audit row in one transaction); this module only adds what the
console asks of a person: a real reason, decisions that fit the player's current status, and
the console's suspension lengths.
"""

from __future__ import annotations

from app.core.errors import Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.identity import closure, staff_actions
from app.identity.models import PLAYER, User

#: Suspension lengths offered to staff, in days; ``None`` = until lifted.
SUSPENSION_CHOICES: dict[str, int | None] = {"indefinite": None, "24h": 1, "7d": 7, "30d": 30}
MAX_REASON = 500


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if len(text) < 3:
        raise ValidationError.field("reason", "Give a reason (at least 3 characters)")
    if len(text) > MAX_REASON:
        raise ValidationError.field("reason", f"Keep the reason under {MAX_REASON} characters")
    return text


def _player(player_id: int, action: str) -> User:
    user = db.session.get(User, player_id)
    if user is None or user.role_id != PLAYER:
        raise NotFound("Player not found")
    if action not in available_actions(user):
        raise Conflict(f"A {user.status} account cannot be changed this way")
    return user


def ban_player(player_id: int, *, actor: User, reason: str | None) -> User:
    text = _reason(reason)
    _player(player_id, "ban")
    return staff_actions.ban(actor, player_id, text)


def suspend_player(
    player_id: int, *, actor: User, reason: str | None, duration: str = "indefinite"
) -> User:
    if duration not in SUSPENSION_CHOICES:
        raise ValidationError.field("duration", "Unknown suspension length")
    text = _reason(reason)
    _player(player_id, "suspend")
    return staff_actions.suspend(actor, player_id, text, SUSPENSION_CHOICES[duration])


def reactivate_player(player_id: int, *, actor: User, reason: str | None) -> User:
    text = _reason(reason)
    _player(player_id, "reactivate")
    return staff_actions.reactivate(actor, player_id, text)


def force_logout_player(player_id: int, *, actor: User, reason: str | None) -> User:
    text = _reason(reason)
    user = _player(player_id, "force-logout")
    staff_actions.force_logout(actor, player_id, reason=text)
    return user


def reopen_player(player_id: int, *, actor: User, reason: str | None) -> User:
    """Reopen an account its player closed (``closure.reopen_by_staff``: audited, refused while
    the player is self-excluded)."""
    _player(player_id, "reopen")
    return closure.reopen_by_staff(player_id, actor=actor, reason=_reason(reason))


#: The decisions the console offers, by URL name: (service, label, permission).
ACTIONS = {
    "ban": (ban_player, "Ban", "players.manage"),
    "suspend": (suspend_player, "Suspend", "players.manage"),
    "reactivate": (reactivate_player, "Reactivate", "players.manage"),
    "force-logout": (force_logout_player, "Force logout", "players.manage"),
    "reopen": (reopen_player, "Reopen", "players.manage"),
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
    if closure.reopenable_at(user) is not None:  # closed by the player (not erased)
        names.append("reopen")
    names.append("force-logout")
    return names
