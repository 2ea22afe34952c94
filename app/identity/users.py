"""User accounts: creation for every role (players register through the identity service).

Invariants: usernames and e-mails are unique case-insensitively (DB index); passwords are
stored only as argon2id hashes; creation is audited in the same transaction.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, or_, select

from app.core import audit
from app.core.crypto import encrypt
from app.core.errors import Conflict, ValidationError
from app.core.extensions import db
from app.identity import passwords
from app.identity.models import PLAYER, User


def find_by_login(login: str) -> User | None:
    value = login.strip().lower()
    return db.session.scalar(
        select(User).where(or_(func.lower(User.username) == value, func.lower(User.email) == value))
    )


def create_user(
    *,
    username: str,
    email: str,
    password: str,
    role_id: int = PLAYER,
    currency: str | None = None,
    totp_secret: str | None = None,
    actor: Any = None,
    enforce_policy: bool = True,
    **profile: Any,
) -> User:
    """Create a user of any role (caller owns the transaction)."""
    username, email = username.strip(), email.strip().lower()
    if not username or not email or "@" not in email:
        raise ValidationError("A username and a valid e-mail are required")
    if enforce_policy:
        passwords.check_policy(password)
    taken = db.session.scalar(
        select(User.id).where(
            or_(func.lower(User.username) == username.lower(), func.lower(User.email) == email)
        )
    )
    if taken:
        raise Conflict("Username or e-mail is already registered")
    from flask import current_app

    user = User(
        username=username,
        email=email,
        password_hash=passwords.hash_password(password),
        role_id=role_id,
        currency=(currency or current_app.config["DEFAULT_CURRENCY"]).upper(),
        referral_code=secrets.token_hex(4).upper(),
        totp_secret_enc=encrypt(totp_secret) if totp_secret else None,
        totp_enabled=bool(totp_secret),
        **profile,
    )
    db.session.add(user)
    db.session.flush()  # the audit row names the new id
    audit.record(
        "user.create",
        actor=actor,
        target_type="user",
        target_id=user.id,
        after={"username": user.username, "email": user.email, "role_id": role_id},
    )
    return user


def stored_language(user_id: int) -> str | None:
    """The language the user chose (``app.core.i18n`` writes notifications and SMS in it)."""
    return db.session.scalar(select(User.language).where(User.id == user_id))


def has_marketing_consent(user_id: int) -> bool:
    """Whether the user opted in to marketing mail (``app.core.mail`` asks before queueing)."""
    return bool(db.session.scalar(select(User.marketing_consent).where(User.id == user_id)))
