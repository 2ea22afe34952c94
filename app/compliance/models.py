"""KYC: a submission groups the documents a player sends for one review decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model
from app.core.states import StateMachine

DOCUMENT_TYPES = ("id_front", "id_back", "passport", "proof_of_address", "selfie")
SUBMISSION_STATUSES = ("pending", "approved", "rejected")
#: A submission is decided once; a new upload after a rejection opens a new submission.
SUBMISSION_STATES = StateMachine("KYC submission", {"pending": {"approved", "rejected"}})


class KycSubmission(Model):
    """One review unit. At most one ``pending`` submission per player (partial unique index):
    new uploads join it until staff decide."""

    __tablename__ = "kyc_submissions"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        Index(
            "uq_kyc_submissions_one_pending",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: Verification level granted on approval (1 = identity, 2 = identity + address).
    level: Mapped[int | None] = mapped_column()
    reviewer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(String(500))
    #: Address the first document of the submission came from.
    ip: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    documents: Mapped[list[KycDocument]] = relationship(
        back_populates="submission", order_by="KycDocument.id"
    )
    history: Mapped[list[KycEvent]] = relationship(order_by="KycEvent.id")


class KycDocument(Model):
    """A stored file: random name under ``UPLOAD_DIR`` (never the client's name), sha256."""

    __tablename__ = "kyc_documents"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("kyc_submissions.id"), index=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    doc_type: Mapped[str] = mapped_column(String(32))
    #: Relative path inside UPLOAD_DIR (random hex name + extension we chose from the bytes).
    storage_name: Mapped[str] = mapped_column(String(255), unique=True)
    original_filename: Mapped[str | None] = mapped_column(String(255))
    mime_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column()
    height: Mapped[int | None] = mapped_column()
    ip: Mapped[str | None] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    submission: Mapped[KycSubmission] = relationship(back_populates="documents")


class KycEvent(Model):
    """History of a submission: uploads and decisions, append-only."""

    __tablename__ = "kyc_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("kyc_submissions.id"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Responsible gaming: limits, exclusions, play sessions and AML risk flags.


LIMIT_TYPES = ("deposit", "loss", "wager", "session_time")
LIMIT_PERIODS = ("daily", "weekly", "monthly")


class RgLimit(Model):
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


class RgExclusion(Model):
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
    #: The player asked to lift it (after its minimum period); the cooling-off runs from here.
    lift_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the player's confirmation can lift it (``lift_requested_at`` + cooling-off).
    lift_confirmable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RgSettings(Model):
    """Per-player settings: the reality check interval the real-time layer reminds at."""

    __tablename__ = "rg_settings"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True)
    #: Minutes between reality-check reminders; None = off.
    reality_check_minutes: Mapped[int | None] = mapped_column()
    #: The player's answer to the deposit-limit prompt (UKGC RTS 12A): ``set`` or ``declined``;
    #: None = not answered yet.
    deposit_limit_prompt: Mapped[str | None] = mapped_column(String(8))
    deposit_limit_prompt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RgSession(Model):
    """A play session: opened by a game launch, extended by each bet; counts toward
    ``session_time`` limits. A gap longer than the idle timeout starts a new session."""

    __tablename__ = "rg_sessions"
    __table_args__ = (Index("ix_rg_sessions_user_seen", "user_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RiskFlag(Model):
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


class RealityCheckSetting(Model):
    """How often a player wants a reality check (responsible gaming); one row per player."""

    __tablename__ = "reality_check_settings"
    __table_args__ = (
        CheckConstraint(
            "interval_minutes IS NULL OR interval_minutes BETWEEN 5 AND 1440",
            name="interval_minutes",
        ),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True)
    #: ``None`` = reminders off.
    interval_minutes: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
