"""Affiliate applications, commission plans and commission statements.

* ``AffiliateApplication``: a player asks to become an agent; staff approve (the user gets the
  Agent role) or reject with a reason. At most one *pending* application per user (partial
  unique index).
* ``CommissionPlan``: how an agent is paid; ``agent_id`` NULL is the operator's default plan
  (one at most: unique index on ``coalesce(agent_id, 0)``). Percentages are basis points.
* ``CommissionStatement``: what the commission job computed and paid for one agent, period
  and currency (unique): the NGR figures, the carry-over in and out per level, the CPA count
  and the ledger transactions it posted. The statement is the stored carry-over: the next
  period starts from the latest earlier statement's ``carry_out_l1``/``carry_out_l2`` (<= 0).
* ``CommissionCpa``: one row per referred player whose CPA was paid (unique ``player_id``):
  a referral earns a CPA once, ever.
"""

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
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model

APPLICATION_STATUSES = ("pending", "approved", "rejected")
APPLICATION_CHANNELS = ("website", "social", "streaming", "email", "community", "other")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class AffiliateApplication(Model):
    __tablename__ = "affiliate_applications"
    __table_args__ = (
        CheckConstraint(_in("status", APPLICATION_STATUSES), name="status"),
        CheckConstraint(_in("channel", APPLICATION_CHANNELS), name="channel"),
        Index(
            "uq_affiliate_applications_pending",
            "user_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_affiliate_applications_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: How the applicant reaches players: website, social, streaming ...
    channel: Mapped[str] = mapped_column(String(16))
    website: Mapped[str | None] = mapped_column(String(255))
    #: Expected monthly audience (self-declared; staff judge it).
    audience: Mapped[str | None] = mapped_column(String(120))
    message: Mapped[str | None] = mapped_column(String(2000))
    reviewed_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CommissionPlan(Model):
    __tablename__ = "commission_plans"
    __table_args__ = (
        CheckConstraint("revenue_share_bps BETWEEN 0 AND 10000", name="share_range"),
        CheckConstraint("level2_share_bps BETWEEN 0 AND 10000", name="level2_range"),
        CheckConstraint("cpa_amount >= 0", name="cpa_non_negative"),
        CheckConstraint("cpa_min_deposit >= 0", name="cpa_min_deposit_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: NULL: the default plan for agents without one of their own.
    agent_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: Level 1: share of the NGR of the agent's own players (basis points).
    revenue_share_bps: Mapped[int] = mapped_column(default=0)
    #: Level 2: share of the NGR of the players of the agent's direct sub-agents.
    level2_share_bps: Mapped[int] = mapped_column(default=0)
    #: CPA per qualified referral, minor units of ``cpa_currency`` (0 = no CPA).
    cpa_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    cpa_currency: Mapped[str] = mapped_column(String(8), default="EUR")
    #: A referral qualifies when their first completed deposit is at least this (same currency).
    cpa_min_deposit: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# One default plan and one plan per agent.
Index("uq_commission_plans_agent", func.coalesce(CommissionPlan.agent_id, 0), unique=True)


class CommissionStatement(Model):
    __tablename__ = "commission_statements"
    __table_args__ = (
        UniqueConstraint(
            "agent_id", "period_start", "currency", name="uq_commission_statements_period"
        ),
        CheckConstraint("carry_out_l1 <= 0 AND carry_out_l2 <= 0", name="carry_non_positive"),
        CheckConstraint(
            "commission_l1 >= 0 AND commission_l2 >= 0 AND cpa_total >= 0", name="paid_non_negative"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    agent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(8))
    #: Level 1 figures (the agent's own players), minor units.
    players: Mapped[int] = mapped_column(default=0)
    stakes: Mapped[int] = mapped_column(BigInteger, default=0)
    wins: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_cost: Mapped[int] = mapped_column(BigInteger, default=0)
    ngr: Mapped[int] = mapped_column(BigInteger, default=0)
    carry_in_l1: Mapped[int] = mapped_column(BigInteger, default=0)
    commission_l1: Mapped[int] = mapped_column(BigInteger, default=0)
    carry_out_l1: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Level 2: NGR of the players of the agent's direct sub-agents.
    ngr_l2: Mapped[int] = mapped_column(BigInteger, default=0)
    carry_in_l2: Mapped[int] = mapped_column(BigInteger, default=0)
    commission_l2: Mapped[int] = mapped_column(BigInteger, default=0)
    carry_out_l2: Mapped[int] = mapped_column(BigInteger, default=0)
    cpa_count: Mapped[int] = mapped_column(default=0)
    cpa_total: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The plan as applied (percentages, CPA) so a later plan change never rewrites history.
    plan: Mapped[Any] = mapped_column(JSON)
    #: Ledger transaction ids per level (``l1``/``l2``/``cpa``).
    ledger_refs: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def total(self) -> int:
        return self.commission_l1 + self.commission_l2 + self.cpa_total


class CommissionCpa(Model):
    __tablename__ = "commission_cpa"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: The referred player; unique: a referral pays a CPA once.
    player_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), unique=True)
    agent_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    statement_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("commission_statements.id"), index=True
    )
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    first_deposit: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
