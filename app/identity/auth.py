"""Who is calling: JWT verification for the JSON API and the permission check for staff.

* Access tokens carry ``type=access``; a refresh token is never accepted as an access token.
* A token is dead when its ``jti`` is on the deny-list (logout) or it was issued before the
  user's ``tokens_valid_after`` (ban, password change, force logout), checked on every request.
* ``permission_required`` is the one guard for staff endpoints; the console reuses ``User.can``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, request
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request

from app.core.db import parse_row_id
from app.core.errors import AccessDenied, AuthenticationError, envelope
from app.core.extensions import db, jwt, login_manager, redis_store
from app.identity.models import PLAYER, TokenFamily, User

F = TypeVar("F", bound=Callable[..., Any])

DENYLIST_PREFIX = "jx:jwt:deny:"


def deny_jti(jti: str, expires_at: int) -> None:
    """Put a token id on the deny-list until it would have expired anyway."""
    ttl = max(1, int(expires_at - datetime.now(UTC).timestamp()))
    redis_store.client().set(DENYLIST_PREFIX + jti, "1", ex=ttl)


def _denied(payload: dict) -> bool:
    """The Redis deny-list, for tokens outside a login session only.

    Policy (docs/operations.md): every token we issue names its login session (``fam``),
    and every revocation (logout, ban, password change, refresh reuse) is written to that
    session's row in PostgreSQL, which ``_is_revoked`` reads on every request. So a session
    token needs no Redis: with Redis down, players and staff keep working and no revoked
    token is accepted. A token without ``fam`` (none is issued by the API) is checked
    against the deny-list, and refused with a 503 while Redis is down (fail closed).
    """
    if payload.get("fam"):
        return False
    return bool(redis_store.client().exists(DENYLIST_PREFIX + payload["jti"]))


def issued_at_us(payload: dict) -> int:
    """When the token was issued, in microseconds.

    Our tokens carry ``iat_us``; ``iat`` alone has one-second resolution, so a token without
    it counts as issued at the start of its second (a cut-off in that second kills it).
    """
    return int(payload.get("iat_us") or payload["iat"] * 1_000_000)


def _is_revoked(payload: dict) -> bool:
    if _denied(payload):
        return True
    user = db.session.get(User, int(payload["sub"]))
    if user is None:
        return True
    cutoff = user.tokens_valid_after
    if cutoff is not None and issued_at_us(payload) < int(cutoff.timestamp() * 1_000_000):
        return True
    family_id = payload.get("fam")
    if family_id:
        # The login session the token belongs to (logout, refresh reuse, password change).
        family = db.session.get(TokenFamily, family_id)
        return family is None or family.revoked_at is not None
    return False


def init_app(app: Flask) -> None:
    login_manager.login_view = "console.login"

    @login_manager.user_loader
    def _console_user(user_id: str) -> User | None:
        # The back office is for staff only; a player id in a session is ignored.
        uid = parse_row_id(user_id)
        user = db.session.get(User, uid) if uid is not None else None
        return user if user is not None and user.is_staff and user.is_active else None

    @jwt.user_identity_loader
    def _identity(user: User | int | str) -> str:
        return str(getattr(user, "id", user))

    @jwt.user_lookup_loader
    def _lookup(_header: dict, payload: dict) -> User | None:
        return db.session.get(User, int(payload["sub"]))

    @jwt.token_in_blocklist_loader
    def _revoked(_header: dict, payload: dict) -> bool:
        return _is_revoked(payload)

    @jwt.expired_token_loader
    def _expired(_header, _payload):
        return envelope(401, "TOKEN_EXPIRED", "Token has expired")

    @jwt.invalid_token_loader
    def _invalid(reason: str):
        return envelope(401, "AUTHENTICATION_ERROR", f"Invalid token: {reason}")

    @jwt.unauthorized_loader
    def _missing(reason: str):
        return envelope(401, "AUTHENTICATION_ERROR", "Authentication required")

    @jwt.revoked_token_loader
    def _revoked_answer(_header, _payload):
        return envelope(401, "AUTHENTICATION_ERROR", "Token has been revoked")

    @jwt.user_lookup_error_loader
    def _no_user(_header, _payload):
        return envelope(401, "AUTHENTICATION_ERROR", "Account not found")

    @jwt.needs_fresh_token_loader
    def _not_fresh(_header, _payload):
        return envelope(401, "AUTHENTICATION_ERROR", "A fresh login is required")

    @jwt.token_verification_failed_loader
    def _claims_failed(_header, _payload):
        return envelope(401, "AUTHENTICATION_ERROR", "Invalid token")

    @jwt.additional_claims_loader
    def _claims(user: Any) -> dict:
        role_id = getattr(user, "role_id", None)
        return {} if role_id is None else {"role": role_id}


def _active_user() -> User:
    verify_jwt_in_request()
    if get_jwt().get("type") != "access":
        raise AuthenticationError("An access token is required")
    user: User = current_user
    if user.status in {"banned", "closed"}:
        raise AccessDenied("This account is closed")
    if user.status == "suspended" and (
        user.status_until is None or user.status_until > datetime.now(UTC)
    ):
        raise AccessDenied("This account is suspended")
    g.user = user
    return user


def login_required(fn: F) -> F:
    """Any authenticated, non-banned user (players and staff)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        _active_user()
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def login_optional(fn: F) -> F:
    """Public endpoint that personalizes for a caller who sends a token: ``g.user`` is the
    user or ``None``. A token that is sent must be valid (a bad one is refused, not ignored)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        g.user = None
        if request.headers.get("Authorization"):
            _active_user()
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def player_required(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args, **kwargs):
        user = _active_user()
        if user.role_id != PLAYER:
            raise AccessDenied("This endpoint is for player accounts")
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def permission_required(permission: str) -> Callable[[F], F]:
    """Staff endpoint guard: valid access token + a role that grants ``permission``."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args, **kwargs):
            user = _active_user()
            if not user.is_staff or not user.can(permission):
                raise AccessDenied()
            return fn(*args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
