"""Loyalty points and levels. Points are not money: they live here, never in a wallet.

* ``LoyaltyLevel``: the level table (Bronze, Silver, Gold, Platinum ...), data seeded by
  ``loyalty.ensure_levels()``; a player's level is the highest whose ``min_points`` they reach.
* ``LoyaltyAccount``: one per player; ``points`` = sum of the player's ``LoyaltyEvent.points``
  (CHECK >= 0), written in the same transaction as the event.
* ``LoyaltyEvent``: the history, append-only: ``wager`` (+points for an applied stake) and
  ``reversal`` (-points when that stake is refunded or rolled back, at most once per wager).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import BigIntPK
from app.extensions import db
from app.models.base import UTCDateTime, utcnow

EVENT_KINDS = ("wager", "reversal")


class LoyaltyLevel(db.Model):
    __tablename__ = "loyalty_levels"
    __table_args__ = (CheckConstraint("min_points >= 0", name="min_points_non_negative"),)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    min_points: Mapped[int] = mapped_column(BigInteger, unique=True)
    #: What the level means for the player (shown in the app).
    description: Mapped[str | None] = mapped_column(String(255))


class LoyaltyAccount(db.Model):
    __tablename__ = "loyalty_accounts"
    __table_args__ = (CheckConstraint("points >= 0", name="points_non_negative"),)

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    level_code: Mapped[str | None] = mapped_column(String(32))
    level_reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LoyaltyEvent(db.Model):
    __tablename__ = "loyalty_events"
    __table_args__ = (
        CheckConstraint("kind IN ('wager', 'reversal')", name="kind"),
        Index("ix_loyalty_events_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    #: Signed: wagers add, reversals take back.
    points: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    #: The stake (minor units) that earned or lost the points.
    amount: Mapped[int] = mapped_column(BigInteger)
    #: Our provider-transaction claim id of the bet (wager) or of the refund/rollback.
    provider_transaction_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    #: For a reversal: the wager event it takes back (unique: taken back once).
    reverses_event_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("loyalty_events.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
