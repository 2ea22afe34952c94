"""Notifications, the transactional outbox and per-player reality-check settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow


class Notification(db.Model):
    """A message to one user, kept for the inbox and pushed live as ``notification``."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: ``promotion``, ``reality_check``, ``withdrawal``, ``system`` ... (free text, indexed use).
    type: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(String(2000))
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    #: Producers that may run twice (jobs, retries) pass a key: the unique index makes the
    #: second insert a no-op, so a notification is never sent twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(db.Model):
    """An event or job written in the business transaction, relayed to Redis afterwards.

    A row exists iff the business change committed; ``delivered_at`` is set once Redis took
    it. Rows are relayed in id order, so events for one user keep their order.
    """

    __tablename__ = "outbox"
    __table_args__ = (CheckConstraint("kind IN ('event', 'job')", name="kind"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    #: Event name (``balance.update``) or job function path (``app.jobs.x.y``).
    name: Mapped[str] = mapped_column(String(200))
    #: Socket.IO room for events; RQ queue name for jobs.
    target: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The relay reads only undelivered rows; keep that index small.
Index(
    "ix_outbox_pending",
    OutboxMessage.id,
    postgresql_where=OutboxMessage.delivered_at.is_(None),
    sqlite_where=OutboxMessage.delivered_at.is_(None),
)


class RealityCheckSetting(db.Model):
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
