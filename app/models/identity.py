"""Sessions (token families + refresh tokens), login history and password-reset tokens.

* A login opens a ``TokenFamily``; every refresh token of that login belongs to it. The family
  has an absolute expiry: rotation never extends a session beyond it.
* A refresh token row is spent by one conditional UPDATE (``used_at IS NULL``): of two racing
  refreshes exactly one changes the row. Presenting a spent token revokes the whole family.
* Password-reset tokens are stored only as SHA-256 digests and spent the same way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class TokenFamily(db.Model):
    """One login session: the chain of refresh tokens issued since a password login."""

    __tablename__ = "token_families"

    #: Random id carried by every token of the session as the ``fam`` claim.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    #: ``player`` (``/api/auth``) or ``staff`` (``/api/admin/auth``): refresh stays in its portal.
    portal: Mapped[str] = mapped_column(String(8), default="player")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Absolute end of the session, whatever the rotations.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    device_fingerprint: Mapped[str | None] = mapped_column(String(128))


class RefreshToken(db.Model):
    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("token_families.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Set once, by the refresh that spent it; never cleared.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    parent_jti: Mapped[str | None] = mapped_column(String(64))


class LoginEvent(db.Model):
    """Every login attempt, successful or not (player and staff portals)."""

    __tablename__ = "login_history"
    __table_args__ = (Index("ix_login_history_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: ``None`` when the login named no known account.
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    login: Mapped[str] = mapped_column(String(255))
    portal: Mapped[str] = mapped_column(String(8), default="player")
    success: Mapped[bool] = mapped_column(Boolean)
    #: Why it failed (``bad_credentials``, ``locked``, ``totp_invalid`` ...); ``None`` on success.
    reason: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    device_fingerprint: Mapped[str | None] = mapped_column(String(128))
    country: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PasswordResetToken(db.Model):
    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    #: SHA-256 hex of the token mailed to the user; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: ``player`` (forgot-password) or ``staff`` (an admin reset it).
    origin: Mapped[str] = mapped_column(String(8), default="player")
