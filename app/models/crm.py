"""CRM segments: a named, stored condition (app.services.crm parses it; never evaluated)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class CrmSegment(db.Model):
    __tablename__ = "crm_segments"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    #: The condition as written by staff; parsed again on every use.
    condition: Mapped[str] = mapped_column(Text)
    last_count: Mapped[int | None] = mapped_column(Integer)
    last_counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CrmBroadcast(db.Model):
    """A message to a segment; fanned out by a job (``app.jobs.crm.fan_out_broadcast``)."""

    __tablename__ = "crm_broadcasts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("crm_segments.id"))
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    send_email: Mapped[bool] = mapped_column(default=False)
    #: queued -> done
    status: Mapped[str] = mapped_column(String(16), default="queued")
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    skipped_no_consent: Mapped[int] = mapped_column(Integer, default=0)
    skipped_excluded: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
