"""Sign-in through outside identities: OpenID Connect issuers and the Telegram Login widget.

Invariants:
* ``(provider, subject)`` names one account (``identity_links``); an account has at most one
  link per provider. Staff accounts never sign in this way (console: password + TOTP).
* OIDC links an existing account **only by an e-mail the issuer verified**; an unverified
  e-mail that belongs to an account is refused (whoever controls the issuer account would
  otherwise take the casino account). A new e-mail creates a player (e-mail verified when the
  issuer says so).
* Telegram: the widget's payload must carry a valid HMAC-SHA256 (key: SHA-256 of the bot
  token) and an ``auth_date`` no older than ``TELEGRAM_AUTH_MAX_AGE``; an unlinked Telegram
  account signs in to nothing: the player links it while signed in, or registers with it
  and an e-mail.
* Secrets of a sign-in in progress (OIDC state, handoff codes) are random, stored as SHA-256
  digests, expire, and are spent by one conditional UPDATE: a replay finds nothing.
* A player with TOTP on gives their code at the handoff exchange (the outside identity is
  one factor).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import Any

from authlib.common.security import generate_token
from flask import current_app
from sqlalchemy import func, select, update

from app.core import audit
from app.core.base import utcnow
from app.core.db import atomic
from app.core.errors import (
    AccessDenied,
    AppError,
    AuthenticationError,
    Conflict,
    NotFound,
    ValidationError,
)
from app.core.extensions import db
from app.identity import accounts, oidc, passwords
from app.identity.models import ExternalAuthFlow, IdentityLink, User

TELEGRAM = "telegram"
_TELEGRAM_FIELDS = ("id", "first_name", "last_name", "username", "photo_url", "auth_date")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- flows (state, handoff) ----------------------------------------------------------------


def _open_flow(kind: str, provider: str, ttl: int, **fields: Any) -> str:
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        ExternalAuthFlow(
            kind=kind,
            secret_hash=_digest(secret),
            provider=provider,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            **fields,
        )
    )
    return secret


def _spend_flow(kind: str, secret: str | None) -> ExternalAuthFlow:
    """The flow named by ``secret``, marked used; a wrong, spent or expired one refuses."""
    if not isinstance(secret, str) or not 20 <= len(secret) <= 100:
        raise AuthenticationError("This sign-in link is invalid or has expired")
    now = utcnow()
    spent = db.session.execute(
        update(ExternalAuthFlow)
        .where(
            ExternalAuthFlow.secret_hash == _digest(secret),
            ExternalAuthFlow.kind == kind,
            ExternalAuthFlow.used_at.is_(None),
            ExternalAuthFlow.expires_at > now,
        )
        .values(used_at=now)
        .returning(ExternalAuthFlow.id)
    ).scalar_one_or_none()
    if spent is None:
        raise AuthenticationError("This sign-in link is invalid or has expired")
    return db.session.get_one(ExternalAuthFlow, spent)


# --- OIDC ----------------------------------------------------------------------------------


def oidc_start(provider: str, *, redirect_uri: str, return_to: str) -> str:
    """The issuer's authorization URL for a new sign-in (state, nonce, PKCE stored)."""
    oidc.metadata(provider)  # an unknown or unreachable issuer stores no state
    nonce = generate_token(32)
    verifier = generate_token(64)
    with atomic():
        state = _open_flow(
            "oidc_state",
            provider,
            int(current_app.config["EXTERNAL_LOGIN_STATE_TTL"]),
            nonce=nonce,
            code_verifier=verifier,
            return_to=return_to,
        )
    return oidc.authorization_url(
        provider, redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=verifier
    )


def oidc_callback(
    provider: str, *, state: str | None, code: str | None, redirect_uri: str
) -> tuple[str, str]:
    """Spend the state, exchange the code, link or create the account; returns
    ``(handoff code, return_to)``."""
    with atomic():
        flow = _spend_flow("oidc_state", state)
        if flow.provider != provider:
            raise AuthenticationError("This sign-in link is invalid or has expired")
        nonce, verifier, return_to = flow.nonce or "", flow.code_verifier or "", flow.return_to
    try:
        if not isinstance(code, str) or not code or len(code) > 2000:
            raise AuthenticationError("The sign-in was cancelled or refused at the provider")
        claims = oidc.exchange(
            provider, code=code, redirect_uri=redirect_uri, code_verifier=verifier, nonce=nonce
        )
        with atomic():
            user = _oidc_account(provider, claims)
            handoff = _open_flow(
                "handoff",
                provider,
                int(current_app.config["EXTERNAL_LOGIN_HANDOFF_TTL"]),
                user_id=user.id,
            )
    except AppError as exc:
        # The state was genuine: the player app named where to hear about the failure.
        exc.return_to = return_to or "/"  # type: ignore[attr-defined]
        raise
    return handoff, return_to or "/"


def _oidc_account(provider: str, claims: oidc.Claims) -> User:
    link = _link_of(provider, claims.subject)
    if link is not None:
        link.last_used_at = utcnow()
        return _usable(db.session.get_one(User, link.user_id))
    if not claims.email:
        raise AuthenticationError("The identity provider did not share an e-mail address")
    existing = db.session.scalar(select(User).where(func.lower(User.email) == claims.email))
    if existing is not None:
        if not claims.email_verified:
            raise AuthenticationError(
                "An account uses this e-mail: sign in with your password, or verify the "
                "e-mail at the identity provider first"
            )
        user = _usable(existing)
        _link(user, provider, claims.subject, claims.email, how="verified_email")
        return user
    user = _create_player(
        username=claims.preferred_username or claims.email.split("@", 1)[0],
        email=claims.email,
        verified=claims.email_verified,
    )
    _link(user, provider, claims.subject, claims.email, how="created")
    return user


# --- Telegram ------------------------------------------------------------------------------


def telegram_verify(payload: Any) -> dict[str, str]:
    """The widget's fields when its hash and ``auth_date`` hold, else 401."""
    token = current_app.config["TELEGRAM_BOT_TOKEN"]
    if not token:
        raise NotFound("Telegram sign-in is not enabled")
    if not isinstance(payload, dict):
        raise ValidationError("Send the Telegram widget's fields as a JSON object")
    given = payload.get("hash")
    fields = {
        k: str(v)
        for k, v in payload.items()
        if k in _TELEGRAM_FIELDS and v is not None and not isinstance(v, dict | list)
    }
    if not isinstance(given, str) or not re.fullmatch(r"[0-9a-f]{64}", given) or "id" not in fields:
        raise AuthenticationError("The Telegram sign-in is not valid")
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields))
    key = hashlib.sha256(token.encode()).digest()
    expected = hmac.new(key, check.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise AuthenticationError("The Telegram sign-in is not valid")
    try:
        auth_date = int(fields.get("auth_date", ""))
    except ValueError:
        raise AuthenticationError("The Telegram sign-in is not valid") from None
    age = utcnow().timestamp() - auth_date
    if age > int(current_app.config["TELEGRAM_AUTH_MAX_AGE"]) or age < -60:
        raise AuthenticationError("The Telegram sign-in has expired: sign in again")
    if not re.fullmatch(r"\d{1,20}", fields["id"]):
        raise AuthenticationError("The Telegram sign-in is not valid")
    return fields


def telegram_account(payload: Any) -> User:
    """The account linked to this Telegram user (404 when none: link or register)."""
    fields = telegram_verify(payload)
    with atomic():
        link = _link_of(TELEGRAM, fields["id"])
        if link is None:
            raise NotFound(
                "No account is linked to this Telegram account: sign in and link it, or "
                "register with it"
            )
        link.last_used_at = utcnow()
        return _usable(db.session.get_one(User, link.user_id))


def telegram_register(payload: Any, *, email: str, username: str | None) -> User:
    fields = telegram_verify(payload)
    with atomic():
        if _link_of(TELEGRAM, fields["id"]) is not None:
            raise Conflict("This Telegram account is already linked: sign in with it")
        user = _create_player(
            username=username or fields.get("username") or f"tg{fields['id']}",
            email=email,
            verified=False,
            exact_username=username is not None,
        )
        _link(user, TELEGRAM, fields["id"], fields.get("username"), how="created")
    return user


def telegram_link(user: User, payload: Any) -> IdentityLink:
    fields = telegram_verify(payload)
    with atomic():
        return _link(user, TELEGRAM, fields["id"], fields.get("username"), how="linked")


# --- links ---------------------------------------------------------------------------------


def links_of(user: User) -> list[IdentityLink]:
    return list(
        db.session.scalars(
            select(IdentityLink).where(IdentityLink.user_id == user.id).order_by(IdentityLink.id)
        )
    )


def unlink(user: User, link_id: int) -> None:
    with atomic():
        link = db.session.get(IdentityLink, link_id)
        if link is None or link.user_id != user.id:
            raise NotFound("Link not found")
        db.session.delete(link)
        audit.record(
            "auth.identity_unlink",
            actor=user,
            target_type="user",
            target_id=user.id,
            before={"provider": link.provider, "subject": link.subject},
        )


def _link_of(provider: str, subject: str) -> IdentityLink | None:
    return db.session.scalar(
        select(IdentityLink)
        .where(IdentityLink.provider == provider, IdentityLink.subject == subject)
        .with_for_update()
    )


def _link(user: User, provider: str, subject: str, display: str | None, *, how: str):
    if user.is_staff:
        raise AccessDenied("Staff accounts sign in at the console")
    taken = _link_of(provider, subject)
    if taken is not None and taken.user_id != user.id:
        raise Conflict("This identity is linked to another account")
    mine = db.session.scalar(
        select(IdentityLink).where(
            IdentityLink.user_id == user.id, IdentityLink.provider == provider
        )
    )
    if mine is not None and mine.subject != subject:
        raise Conflict(f"Another {provider} identity is linked to this account: unlink it first")
    if mine is not None:
        return mine
    link = IdentityLink(
        user_id=user.id,
        provider=provider,
        subject=subject,
        display=(display or None) and display[:255],
        created_at=utcnow(),
        last_used_at=utcnow(),
    )
    db.session.add(link)
    db.session.flush()
    audit.record(
        "auth.identity_link",
        actor=user,
        target_type="user",
        target_id=user.id,
        after={"provider": provider, "subject": subject, "how": how},
    )
    return link


def _usable(user: User) -> User:
    if user.is_staff:
        raise AccessDenied("Staff accounts sign in at the console")
    return user


def _create_player(
    *, username: str, email: str, verified: bool, exact_username: bool = False
) -> User:
    """A player with no usable password (they may set one through "forgot password")."""
    base = re.sub(r"[^A-Za-z0-9_]", "", username)[:40] or "player"
    name = base
    if not exact_username:
        taken = db.session.scalar(
            select(func.count(User.id)).where(func.lower(User.username) == name.lower())
        )
        if taken or len(name) < 3:
            name = f"{base[:40]}_{secrets.token_hex(3)}"
    return accounts.create_external_player(
        username=name,
        email=email,
        password_hash=passwords.hash_password(secrets.token_urlsafe(48)),
        email_verified=verified,
    )


def handoff_exchange(
    code: str | None, *, auth_code: str | None, client: accounts.ClientInfo
) -> accounts.LoginResult:
    """The handoff code (from the redirect back to the player app) for a session. A refusal
    that the player can fix (the second factor) leaves the code usable until it expires."""
    with atomic():
        flow = _spend_flow("handoff", code)
        flow_id, user_id, provider = flow.id, flow.user_id, flow.provider
    if user_id is None:  # pragma: no cover - a handoff always names its account
        raise AuthenticationError("This sign-in link is invalid or has expired")

    def usable_again() -> None:
        db.session.execute(
            update(ExternalAuthFlow).where(ExternalAuthFlow.id == flow_id).values(used_at=None)
        )

    return accounts.external_login(
        user_id, provider, auth_code=auth_code, client=client, on_refusal=usable_again
    )


def telegram_login(
    payload: Any, *, auth_code: str | None, client: accounts.ClientInfo
) -> accounts.LoginResult:
    user = telegram_account(payload)
    return accounts.external_login(user.id, TELEGRAM, auth_code=auth_code, client=client)
