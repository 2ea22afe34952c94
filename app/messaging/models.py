"""Support tickets and the messages on them (player <-> staff conversation).

``status``: open (waiting for staff) -> answered (waiting for the player) -> open ... ->
closed. A closed ticket takes no more messages; the player opens a new one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model

TICKET_STATUSES = ("open", "answered", "closed")
#: "ticket": opened with a subject over HTTP; "chat": a live conversation over Socket.IO
#: (``app.messaging.chat``). Both are answered from the same console inbox.
TICKET_CHANNELS = ("ticket", "chat")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_CATEGORIES = (
    "account",
    "payments",
    "bonus",
    "games",
    "technical",
    "responsible_gaming",
    "other",
)


class SupportTicket(Model):
    __tablename__ = "support_tickets"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in TICKET_STATUSES) + ")", name="status"
        ),
        CheckConstraint(
            "priority IN (" + ", ".join(f"'{s}'" for s in TICKET_PRIORITIES) + ")",
            name="priority",
        ),
        CheckConstraint(
            "channel IN (" + ", ".join(f"'{s}'" for s in TICKET_CHANNELS) + ")", name="channel"
        ),
        Index("ix_support_tickets_user_created", "user_id", "created_at"),
        Index("ix_support_tickets_status_updated", "status", "last_message_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    subject: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32), default="other")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    status: Mapped[str] = mapped_column(String(16), default="open")
    channel: Mapped[str] = mapped_column(String(8), default="ticket", server_default="ticket")
    #: The newest message each side has read (unread = the other side's messages after it).
    player_read_id: Mapped[int | None] = mapped_column(BigInteger)
    staff_read_id: Mapped[int | None] = mapped_column(BigInteger)
    assigned_to_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))

    messages: Mapped[list[SupportMessage]] = relationship(
        back_populates="ticket", order_by="SupportMessage.id", lazy="selectin"
    )


class SupportMessage(Model):
    __tablename__ = "support_messages"
    __table_args__ = (
        CheckConstraint("author_kind IN ('player', 'staff')", name="author_kind"),
        # The per-player chat rate limit counts a player's recent messages.
        Index("ix_support_messages_author_created", "author_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_tickets.id"), index=True)
    author_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    author_kind: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Moderation: a hidden message stays stored (and audited) but reads as removed.
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))

    ticket: Mapped[SupportTicket] = relationship(back_populates="messages")


# CRM segments: a named, stored condition (app.messaging.crm parses it; never evaluated).


class CrmSegment(Model):
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


class CrmBroadcast(Model):
    """A message to a segment; fanned out by a job (``app.messaging.jobs.fan_out_broadcast``)."""

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
