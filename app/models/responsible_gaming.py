"""Responsible gaming: limits, exclusions, play sessions and AML risk flags."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow

LIMIT_TYPES = ("deposit", "loss", "wager", "session_time")
LIMIT_PERIODS = ("daily", "weekly", "monthly")


class RgLimit(db.Model):
    """One limit per (player, type, period, currency). ``session_time`` limits have no currency
    (stored as ``''``) and count minutes.

    ``value`` is what binds now; ``pending_value`` / ``pending_remove`` is a raise or removal
    waiting out its cooling-off until ``pending_effective_at``.
    """

    __tablename__ = "rg_limits"
    __table_args__ = (
        UniqueConstraint("user_id", "limit_type", "period", "currency", name="one_per_kind"),
        CheckConstraint(
            "limit_type IN ('deposit', 'loss', 'wager', 'session_time')", name="limit_type"
        ),
        CheckConstraint("period IN ('daily', 'weekly', 'monthly')", name="period"),
        CheckConstraint("value >= 0", name="value_not_negative"),
        CheckConstraint("pending_value IS NULL OR pending_value >= 0", name="pending_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    limit_type: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(8))
    #: ISO currency for money limits; '' for session_time.
    currency: Mapped[str] = mapped_column(String(8), default="")
    #: Minor units (money limits) or minutes (session_time).
    value: Mapped[int] = mapped_column(BigInteger)
    pending_value: Mapped[int | None] = mapped_column(BigInteger)
    pending_remove: Mapped[bool] = mapped_column(default=False)
    pending_effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RgExclusion(db.Model):
    """A self-exclusion or a time-out. ``ends_at`` None = permanent.

    A time-out ends by itself; a self-exclusion that has run its course stays in force until
    it is lifted (``lifted_at``) — the account never reopens silently.
    """

    __tablename__ = "rg_exclusions"
    __table_args__ = (
        CheckConstraint("kind IN ('self_exclusion', 'time_out')", name="kind"),
        Index("ix_rg_exclusions_user_active", "user_id", "lifted_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    duration: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(500))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))


class RgSettings(db.Model):
    """Per-player settings: the reality check interval the real-time layer reminds at."""

    __tablename__ = "rg_settings"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True)
    #: Minutes between reality-check reminders; None = off.
    reality_check_minutes: Mapped[int | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RgSession(db.Model):
    """A play session: opened by a game launch, extended by each bet; counts toward
    ``session_time`` limits. A gap longer than the idle timeout starts a new session."""

    __tablename__ = "rg_sessions"
    __table_args__ = (Index("ix_rg_sessions_user_seen", "user_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RiskFlag(db.Model):
    """An AML / fraud signal for staff review (large amounts, velocity, little play)."""

    __tablename__ = "risk_flags"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'reviewed', 'dismissed')", name="status"),
        Index("ix_risk_flags_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    severity: Mapped[str] = mapped_column(String(8), default="medium")
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: What the flag is about, e.g. ``payment:txn_...``.
    reference: Mapped[str | None] = mapped_column(String(100), index=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
