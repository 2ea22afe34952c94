"""E-mail verification: a signed one-time link token and a 6-digit code, either one verifies.

Invariants:
* Every verification mail is an ``email_verifications`` row holding only SHA-256 digests of
  its token and code; the row names the address it went to, so it verifies that address only.
* A row is spent by one conditional UPDATE (``used_at IS NULL``, not expired): a replayed
  link or code fails, and so do two racing submissions but one. Verifying spends every other
  open row of the player.
* A code is checked against the player's newest open row only; each wrong code counts, and
  after ``EMAIL_VERIFICATION_MAX_ATTEMPTS`` the row dies (brute force of 10^6 codes needs
  10^6 / attempts resends, which are capped per day).
* Resending waits ``EMAIL_VERIFICATION_RESEND_SECONDS`` after the last mail and stops at
  ``EMAIL_VERIFICATION_MAX_PER_DAY`` mails in 24 h (429 ``RATE_LIMITED`` with ``Retry-After``).
* What an unverified player may not do is the operator setting ``unverified_email_blocks``
  (``withdraw`` by default; ``deposit``), checked through the payment hooks (``app.hooks``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from app.core import audit, mail_templates, opsettings
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, rowcount
from app.core.errors import EmailNotVerified, RateLimited, ValidationError
from app.core.extensions import db
from app.identity.models import EmailVerification, User

INVALID = "This verification link or code is invalid, used or expired"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _code_digest(token_hash: str, code: str) -> str:
    return hmac.new(token_hash.encode(), code.encode(), hashlib.sha256).hexdigest()


def issue(user: User) -> None:
    """Queue a verification mail for ``user.email`` (caller's transaction)."""
    cfg = current_app.config
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**6):06d}"
    token_hash = _digest(token)
    now = utcnow()
    ttl = int(cfg["EMAIL_VERIFICATION_TTL"])
    db.session.add(
        EmailVerification(
            user_id=user.id,
            email=user.email,
            token_hash=token_hash,
            code_hash=_code_digest(token_hash, code),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    link = f"{cfg['PUBLIC_URL']}/verify-email?token={token}"
    mail_templates.queue_templated(
        "email_verification",
        to=user.email,
        user_id=user.id,
        language=user.language,
        context={"username": user.username, "hours": ttl // 3600, "link": link, "code": code},
    )


def _mark_verified(user: User, row_id: int) -> None:
    now = utcnow()
    db.session.execute(
        update(EmailVerification)
        .where(EmailVerification.user_id == user.id, EmailVerification.used_at.is_(None))
        .values(used_at=now)
    )
    user.email_verified_at = now
    audit.record(
        "user.email_verified",
        target_type="user",
        target_id=user.id,
        after={"email": user.email, "verification_id": row_id},
    )


def verify_token(token: str) -> User:
    """Spend a link token; answers the verified user."""
    digest = _digest(token or "")
    with atomic():
        now = utcnow()
        row = db.session.scalar(
            select(EmailVerification).where(EmailVerification.token_hash == digest)
        )
        spent = rowcount(
            db.session.execute(
                update(EmailVerification)
                .where(
                    EmailVerification.token_hash == digest,
                    EmailVerification.used_at.is_(None),
                    EmailVerification.expires_at > now,
                )
                .values(used_at=now)
            )
        )
        if spent != 1 or row is None:
            raise ValidationError.field("token", INVALID)
        user = lock_existing(User, User.id == row.user_id)
        if user.email.lower() != row.email.lower():
            raise ValidationError.field("token", INVALID)
        _mark_verified(user, row.id)
    return user


def verify_code(user: User, code: str) -> User:
    """Check a 6-digit code against the player's newest open verification."""
    code = (code or "").strip()
    max_attempts = int(current_app.config["EMAIL_VERIFICATION_MAX_ATTEMPTS"])
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.email_verified_at is not None:
            return user
        now = utcnow()
        row = db.session.scalar(
            select(EmailVerification)
            .where(
                EmailVerification.user_id == user.id,
                EmailVerification.used_at.is_(None),
                EmailVerification.expires_at > now,
                EmailVerification.attempts < max_attempts,
                func.lower(EmailVerification.email) == user.email.lower(),
            )
            .order_by(EmailVerification.created_at.desc(), EmailVerification.id.desc())
            .limit(1)
        )
        good = row is not None and hmac.compare_digest(
            row.code_hash, _code_digest(row.token_hash, code)
        )
        if not good:
            if row is not None:
                row.attempts += 1
            # Commit the count even though we refuse (the wrong guess must stay counted).
            failure = ValidationError.field("code", INVALID)
        else:
            assert row is not None
            row.used_at = now
            _mark_verified(user, row.id)
            failure = None
    if failure is not None:
        raise failure
    return user


def resend(user: User) -> None:
    """Mail a fresh link and code, within the resend limits."""
    cfg = current_app.config
    with atomic():
        user = lock_existing(User, User.id == user.id)
        if user.email_verified_at is not None:
            raise ValidationError("This e-mail address is already verified")
        now = utcnow()
        recent = list(
            db.session.scalars(
                select(EmailVerification.created_at).where(
                    EmailVerification.user_id == user.id,
                    EmailVerification.created_at > now - timedelta(days=1),
                )
            )
        )
        spacing = int(cfg["EMAIL_VERIFICATION_RESEND_SECONDS"])
        if recent and max(recent) + timedelta(seconds=spacing) > now:
            wait = int((max(recent) + timedelta(seconds=spacing) - now).total_seconds()) + 1
            raise RateLimited(
                "Wait before asking for another verification e-mail",
                headers={"Retry-After": str(wait)},
                retry_after=wait,
            )
        if len(recent) >= int(cfg["EMAIL_VERIFICATION_MAX_PER_DAY"]):
            wait = int((min(recent) + timedelta(days=1) - now).total_seconds()) + 1
            raise RateLimited(
                "Too many verification e-mails today; try again later",
                headers={"Retry-After": str(wait)},
                retry_after=wait,
            )
        issue(user)
        audit.record("user.email_verification_resent", target_type="user", target_id=user.id)


def _require_verified(user_id: int, action: str) -> None:
    if action not in (opsettings.value("unverified_email_blocks") or []):
        return
    verified = db.session.scalar(select(User.email_verified_at).where(User.id == user_id))
    if verified is None:
        raise EmailNotVerified(
            f"Verify your e-mail address before you {action}", requires="email_verification"
        )


def check_withdrawal(user_id: int, amount_minor: int, currency: str) -> None:
    """``payments.hooks.withdrawal_checks``: refuse when the operator blocks ``withdraw``."""
    _require_verified(user_id, "withdraw")


def check_deposit(user: User, amount_minor: int, currency: str) -> None:
    """``payments.hooks.deposit_checks``: refuse when the operator blocks ``deposit``."""
    _require_verified(user.id, "deposit")
