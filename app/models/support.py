"""Support tickets and the messages on them (player <-> staff conversation).

``status``: open (waiting for staff) -> answered (waiting for the player) -> open ... ->
closed. A closed ticket takes no more messages; the player opens a new one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow

TICKET_STATUSES = ("open", "answered", "closed")
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


class SupportTicket(db.Model):
    __tablename__ = "support_tickets"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in TICKET_STATUSES) + ")", name="status"
        ),
        CheckConstraint(
            "priority IN (" + ", ".join(f"'{s}'" for s in TICKET_PRIORITIES) + ")",
            name="priority",
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


class SupportMessage(db.Model):
    __tablename__ = "support_messages"
    __table_args__ = (CheckConstraint("author_kind IN ('player', 'staff')", name="author_kind"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("support_tickets.id"), index=True)
    author_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    author_kind: Mapped[str] = mapped_column(String(8))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    ticket: Mapped[SupportTicket] = relationship(back_populates="messages")
