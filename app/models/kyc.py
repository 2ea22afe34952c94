"""KYC: a submission groups the documents a player sends for one review decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow

DOCUMENT_TYPES = ("id_front", "id_back", "passport", "proof_of_address", "selfie")
SUBMISSION_STATUSES = ("pending", "approved", "rejected")


class KycSubmission(db.Model):
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


class KycDocument(db.Model):
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


class KycEvent(db.Model):
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
