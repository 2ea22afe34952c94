"""What staff may do to user accounts: search, edit, ban, suspend, reset, force logout, agents.

Shared by the staff JSON API and the back office console.

Invariants:
* Every function takes the acting staff ``actor`` and checks its permission itself (the views
  check too); acting on a staff account needs ``staff.manage``; nobody bans, suspends or
  resets themselves.
* Each action is one transaction: the change, the revocation of the user's tokens (where the
  action ends sessions) and its audit row commit together; ``session.logout`` is published to
  ``user:<id>`` after commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import asc, desc, func, select

from app.core import audit
from app.core.base import utcnow
from app.core.db import atomic, lock_one, page_of
from app.core.errors import AccessDenied, Conflict, NotFound, ValidationError
from app.core.events import publish, user_room
from app.core.extensions import db
from app.identity import accounts as identity
from app.identity import passwords, verification
from app.identity.models import AGENT, PLAYER, USER_STATUSES, Role, User

#: Fields staff may set with ``PUT /api/admin/users/<id>``.
STAFF_EDITABLE = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "nationality",
    "country",
    "city",
    "address",
    "postal_code",
    "gender",
    "timezone",
    "language",
    "status",
    "status_reason",
    "role",
)
#: Money and compliance state have their own audited flows (adjust-balance, KYC review).
REFUSED_FIELDS = {
    "balance": "use POST /api/admin/users/<id>/adjust-balance",
    "bonus_balance": "use POST /api/admin/users/<id>/adjust-balance",
    "kyc_status": "KYC decisions go through the KYC review",
    "kyc_level": "KYC decisions go through the KYC review",
    "kyc": "KYC decisions go through the KYC review",
    "password": "use POST /api/admin/users/<id>/reset-password",
    "password_hash": "use POST /api/admin/users/<id>/reset-password",
    "totp_secret": "two-factor secrets are set by the user",
    "currency": "the wallet currency cannot be changed",
    "id": "ids cannot be changed",
    "username": "usernames cannot be changed",
}
SORTABLE = {"created_at", "username", "email", "last_login_at", "id", "status"}


@dataclass
class UserFilters:
    username: str | None = None
    email: str | None = None
    status: str | None = None
    country: str | None = None
    role: str | None = None
    search: str | None = None
    sort: str = "created_at:desc"


def _require(actor: User, permission: str) -> None:
    if actor is None or not actor.is_staff or not actor.can(permission):
        raise AccessDenied()


def _target(actor: User, user_id: int, *, lock: bool = True) -> User:
    user = lock_one(User, User.id == user_id) if lock else db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    if user.is_staff and not actor.can("staff.manage"):
        raise AccessDenied("Acting on staff accounts needs the staff.manage permission")
    return user


def _not_self(actor: User, user: User, what: str) -> None:
    if actor.id == user.id:
        raise AccessDenied(f"You cannot {what} your own account")


def _logout_event(user_id: int, reason: str) -> None:
    publish("session.logout", {"reason": reason}, room=user_room(user_id))


def list_users(actor: User, filters: UserFilters, *, page: int, limit: int):
    _require(actor, "players.read")
    query = select(User)
    if filters.username:
        query = query.where(func.lower(User.username).contains(filters.username.lower()))
    if filters.email:
        query = query.where(func.lower(User.email).contains(filters.email.lower()))
    if filters.search:
        term = filters.search.lower()
        query = query.where(
            func.lower(User.username).contains(term) | func.lower(User.email).contains(term)
        )
    if filters.status:
        if filters.status.lower() not in USER_STATUSES:
            raise ValidationError.field("status", f"One of {', '.join(USER_STATUSES)}")
        query = query.where(User.status == filters.status.lower())
    if filters.country:
        query = query.where(User.country == filters.country.upper())
    if filters.role:
        query = query.where(User.role_id == identity.parse_role(filters.role))
    field, _, direction = (filters.sort or "created_at:desc").partition(":")
    if field not in SORTABLE or direction not in {"", "asc", "desc"}:
        raise ValidationError.field(
            "sort", f"Use <field>:asc|desc with field one of {', '.join(sorted(SORTABLE))}"
        )
    order = desc if direction in {"", "desc"} else asc
    return page_of(query, order(getattr(User, field)), order(User.id), page=page, limit=limit)


def get_user(actor: User, user_id: int) -> User:
    _require(actor, "players.read")
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def update_user(actor: User, user_id: int, changes: dict[str, Any]) -> User:
    """Edit profile fields, status (with a reason) and, with ``staff.manage``, the role."""
    _require(actor, "players.manage")
    for name in changes:
        if name in REFUSED_FIELDS:
            raise ValidationError.field(
                name, f"{name} cannot be changed here: {REFUSED_FIELDS[name]}"
            )
        if name not in STAFF_EDITABLE:
            raise ValidationError.field(name, f"{name} cannot be changed")
    changes = dict(changes)
    if changes.get("date_of_birth"):
        identity._adult(changes["date_of_birth"])
    with atomic():
        user = _target(actor, user_id)
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        ends_sessions = False
        if "role" in changes:
            role_id = identity.parse_role(changes.pop("role"))
            if not actor.can("staff.manage"):
                raise AccessDenied("Changing roles needs the staff.manage permission")
            _not_self(actor, user, "change the role of")
            if role_id != user.role_id:
                before["role_id"], after["role_id"] = user.role_id, role_id
                user.role_id = role_id
                user.role = db.session.get_one(Role, role_id)
                ends_sessions = True  # old tokens carry the old role
        if "status" in changes:
            status = str(changes.pop("status")).lower()
            if status not in USER_STATUSES:
                raise ValidationError.field("status", f"One of {', '.join(USER_STATUSES)}")
            if status != "active" and not changes.get("status_reason"):
                raise ValidationError.field("status_reason", "A reason is required")
            if status != user.status:
                _not_self(actor, user, "change the status of")
                before["status"], after["status"] = user.status, status
                user.status = status
                user.status_until = None
                ends_sessions = ends_sessions or status != "active"
        if "status_reason" in changes:
            reason = changes.pop("status_reason")
            before["status_reason"], after["status_reason"] = user.status_reason, reason
            user.status_reason = reason if user.status != "active" else None
        if "email" in changes:
            email = str(changes["email"]).strip().lower()
            taken = db.session.scalar(
                select(User.id).where(func.lower(User.email) == email, User.id != user.id)
            )
            if taken:
                raise ValidationError.field("email", "This e-mail belongs to another account")
            changes["email"] = email
        reverify = "email" in changes and changes["email"] != (user.email or "").lower()
        for name, value in changes.items():
            before[name], after[name] = getattr(user, name), value
            setattr(user, name, value)
        if reverify and user.role_id == PLAYER:
            # A new address is unproven: it must be verified again (link + code mailed there).
            verified_at = user.email_verified_at
            before["email_verified_at"] = verified_at.isoformat() if verified_at else None
            after["email_verified_at"] = None
            user.email_verified_at = None
            verification.issue(user)
        if ends_sessions:
            identity.revoke_sessions(user, "status_or_role_change", cut_off=True)
            _logout_event(user.id, "account_changed")
        audit.record(
            "admin.user_update",
            actor=actor,
            target_type="user",
            target_id=user.id,
            before=before,
            after=after,
            reason=after.get("status_reason"),
        )
    return user


def ban(actor: User, user_id: int, reason: str) -> User:
    _require(actor, "players.manage")
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required")
    with atomic():
        user = _target(actor, user_id)
        _not_self(actor, user, "ban")
        before = {"status": user.status, "status_reason": user.status_reason}
        user.status, user.status_reason, user.status_until = "banned", reason.strip(), None
        revoked = identity.revoke_sessions(user, "banned", cut_off=True)
        audit.record(
            "admin.user_ban",
            actor=actor,
            target_type="user",
            target_id=user.id,
            before=before,
            after={"status": "banned", "sessions_revoked": revoked},
            reason=user.status_reason,
        )
        _logout_event(user.id, "banned")
    return user


def suspend(actor: User, user_id: int, reason: str, duration_days: int | None) -> User:
    _require(actor, "players.manage")
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required")
    if duration_days is not None and not 1 <= duration_days <= 3650:
        raise ValidationError.field("duration_days", "Between 1 and 3650 days")
    with atomic():
        user = _target(actor, user_id)
        _not_self(actor, user, "suspend")
        if user.status in {"banned", "closed"}:
            raise ValidationError.field("status", f"The account is already {user.status}")
        before = {"status": user.status, "status_until": user.status_until}
        until = utcnow() + timedelta(days=duration_days) if duration_days else None
        user.status, user.status_reason, user.status_until = "suspended", reason.strip(), until
        revoked = identity.revoke_sessions(user, "suspended", cut_off=True)
        audit.record(
            "admin.user_suspend",
            actor=actor,
            target_type="user",
            target_id=user.id,
            before=before,
            after={
                "status": "suspended",
                "status_until": until.isoformat() if until else None,
                "sessions_revoked": revoked,
            },
            reason=user.status_reason,
        )
        _logout_event(user.id, "suspended")
    return user


def reset_password(actor: User, user_id: int) -> User:
    """The old password stops working now; the user gets a one-time link to choose a new one."""
    _require(actor, "players.manage")
    with atomic():
        user = _target(actor, user_id)
        _not_self(actor, user, "reset the password of")
        user.password_hash = passwords.hash_password(secrets.token_urlsafe(32))
        user.password_changed_at = utcnow()
        revoked = identity.revoke_sessions(user, "admin_password_reset", cut_off=True)
        identity.issue_reset_token(user, origin=identity.STAFF_PORTAL)
        audit.record(
            "admin.user_reset_password",
            actor=actor,
            target_type="user",
            target_id=user.id,
            after={"reset_email_sent": True, "sessions_revoked": revoked},
        )
        _logout_event(user.id, "password_reset")
    return user


def reactivate(actor: User, user_id: int, reason: str) -> User:
    """Lift a ban, suspension or lock; the reason is recorded."""
    _require(actor, "players.manage")
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required")
    with atomic():
        user = _target(actor, user_id)
        _not_self(actor, user, "reactivate")
        if user.status not in {"suspended", "banned", "locked"}:
            raise Conflict(f"A {user.status} account cannot be changed this way")
        before = {"status": user.status, "status_reason": user.status_reason}
        user.status, user.status_reason, user.status_until = "active", None, None
        user.failed_logins, user.locked_until = 0, None
        audit.record(
            "admin.user_reactivate",
            actor=actor,
            target_type="user",
            target_id=user.id,
            before=before,
            after={"status": "active"},
            reason=reason.strip(),
        )
    return user


def force_logout(actor: User, user_id: int, reason: str | None = None) -> int:
    _require(actor, "players.manage")
    with atomic():
        user = _target(actor, user_id)
        revoked = identity.revoke_sessions(user, "admin_logout", cut_off=True)
        audit.record(
            "admin.user_logout",
            actor=actor,
            target_type="user",
            target_id=user.id,
            after={"sessions_revoked": revoked},
            reason=reason,
        )
        _logout_event(user.id, "forced_logout")
    return revoked


def assign_agent(actor: User, user_id: int, agent_id: int | None) -> User:
    """Attach a player to an agent (``None`` detaches)."""
    _require(actor, "affiliates.manage")
    with atomic():
        user = _target(actor, user_id)
        if user.is_staff:
            raise ValidationError.field("user_id", "Only player accounts are assigned to agents")
        if agent_id is not None:
            agent = db.session.get(User, agent_id)
            if agent is None or agent.role_id != AGENT:
                raise ValidationError.field("agent_id", "Not an agent account")
            if agent.status != "active":
                raise ValidationError.field("agent_id", "The agent account is not active")
        before = {"agent_id": user.agent_id}
        user.agent_id = agent_id
        audit.record(
            "admin.user_assign_agent",
            actor=actor,
            target_type="user",
            target_id=user.id,
            before=before,
            after={"agent_id": agent_id},
        )
    return user
