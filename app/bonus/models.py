"""Promotions (what the operator offers) and bonuses (what one player received from one).

* ``Promotion``: the offer and its rules. ``claims_count`` is the total-claim counter, changed
  only under the promotion row lock so ``max_claims_total`` holds under concurrency.
* ``PlayerBonus``: one claim of a promotion by a player. The money itself lives in the wallet's
  bonus balance (ledger ``bonus_grant`` / ``bonus_convert`` / ``bonus_forfeit``); this row
  tracks the wagering contract. At most one bonus per (player, currency) is ``pending`` or
  ``active`` at a time (partial unique index): the wallet has one bonus balance per currency,
  so it always belongs to exactly one contract.
* A deposit triggers at most one bonus (unique ``trigger_ref``).
* ``FreeSpinGrant``: the free rounds a ``free_spins`` bonus gave, on one game. A spin is
  consumed by the provider's bet callback that names the grant (``free_round_id``), with a
  conditional UPDATE under the player's wallet lock: never more than ``spins_total``.
  ``FreeSpinRound`` marks the provider rounds that were free (one spin each) so their win is
  paid as operator-funded bonus money (ledger ``bonus_grant``), never as a game win.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model
from app.core.states import StateMachine

PROMOTION_TYPES = ("deposit_match", "reload", "no_deposit", "cashback", "free_spins")
PROMOTION_STATUSES = ("draft", "active", "inactive")
#: pending: claimed, waiting for the qualifying deposit; active: granted, wagering;
#: completed: converted to cash; forfeited / expired / cancelled: ended without conversion.
BONUS_STATUSES = ("pending", "active", "completed", "forfeited", "expired", "cancelled")
OPEN_BONUS_STATUSES = ("pending", "active")
#: A pending bonus is granted (active) by its qualifying deposit, or ends unused; an active one
#: converts (completed) or ends without conversion. The ended statuses are final.
BONUS_STATES = StateMachine(
    "bonus",
    {
        "pending": {"active", "cancelled", "expired"},
        "active": {"completed", "forfeited", "expired", "cancelled"},
    },
)


class Promotion(Model):
    __tablename__ = "promotions"
    __table_args__ = (
        CheckConstraint(
            "type IN (" + ", ".join(f"'{t}'" for t in PROMOTION_TYPES) + ")", name="type"
        ),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in PROMOTION_STATUSES) + ")", name="status"
        ),
        CheckConstraint("match_percent >= 0 AND match_percent <= 1000", name="match_percent"),
        CheckConstraint("cashback_percent >= 0 AND cashback_percent <= 100", name="cashback"),
        CheckConstraint("wagering_multiplier >= 0", name="wagering_multiplier"),
        CheckConstraint(
            "default_contribution >= 0 AND default_contribution <= 100", name="contrib"
        ),
        CheckConstraint("bonus_amount_minor >= 0", name="bonus_amount_non_negative"),
        CheckConstraint("max_bonus_minor IS NULL OR max_bonus_minor > 0", name="max_bonus"),
        CheckConstraint("min_deposit_minor >= 0", name="min_deposit_non_negative"),
        CheckConstraint("max_bet_minor IS NULL OR max_bet_minor > 0", name="max_bet"),
        CheckConstraint("max_cashout_minor IS NULL OR max_cashout_minor >= 0", name="max_cashout"),
        CheckConstraint("claims_count >= 0", name="claims_count_non_negative"),
        CheckConstraint("free_spins_count >= 0 AND free_spins_count <= 1000", name="fs_count"),
        CheckConstraint("free_spin_value_minor >= 0", name="fs_value_non_negative"),
        CheckConstraint("free_spins_valid_days > 0", name="fs_valid_days"),
        Index(
            "uq_promotions_voucher_code",
            text("lower(voucher_code)"),
            unique=True,
            postgresql_where=text("voucher_code IS NOT NULL"),
            sqlite_where=text("voucher_code IS NOT NULL"),
        ),
        Index("ix_promotions_status_priority", "status", "priority"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    terms: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    currency: Mapped[str] = mapped_column(String(8))
    #: Deposit match / reload: bonus = deposit * percent / 100, capped by ``max_bonus_minor``.
    match_percent: Mapped[int] = mapped_column(Integer, default=0)
    max_bonus_minor: Mapped[int | None] = mapped_column(BigInteger)
    min_deposit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: No-deposit: the fixed bonus amount.
    bonus_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Cashback: percent of the net loss over ``cashback_period_days``, paid as bonus.
    cashback_percent: Mapped[int] = mapped_column(Integer, default=0)
    cashback_period_days: Mapped[int] = mapped_column(Integer, default=7)
    #: Free spins: how many, on which game, the stake each spin plays with, and how long the
    #: spins may be used (winnings are the bonus; their wagering is ``wagering_multiplier``).
    free_spins_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    free_spins_game_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("games.id"))
    free_spin_value_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    free_spins_valid_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    #: Wagering requirement = bonus * multiplier (0: the bonus converts at once).
    wagering_multiplier: Mapped[int] = mapped_column(Integer, default=0)
    #: Percent of a stake that counts on games not listed in ``game_contributions``
    #: (0 = only the listed games are eligible).
    default_contribution: Mapped[int] = mapped_column(Integer, default=100)
    #: ``{"<game id>": percent}``; a listed 0 excludes that game.
    game_contributions: Mapped[Any] = mapped_column(JSON, default=dict)
    max_bet_minor: Mapped[int | None] = mapped_column(BigInteger)
    max_cashout_minor: Mapped[int | None] = mapped_column(BigInteger)
    #: How long a granted bonus may be wagered before it expires.
    bonus_valid_days: Mapped[int] = mapped_column(Integer, default=30)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_claims_per_player: Mapped[int | None] = mapped_column(Integer, default=1)
    max_claims_total: Mapped[int | None] = mapped_column(Integer)
    claims_count: Mapped[int] = mapped_column(Integer, default=0)
    #: ISO country codes allowed (empty: everywhere).
    countries: Mapped[Any] = mapped_column(JSON, default=list)
    voucher_code: Mapped[str | None] = mapped_column(String(64))
    #: A CRM segment: only its players see and may receive the offer (None: everyone).
    segment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("crm_segments.id"))
    #: Only for the player's first completed deposit (welcome bonus).
    first_deposit_only: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Applied to a qualifying deposit without an explicit claim (welcome offers).
    auto_apply: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PlayerBonus(Model):
    __tablename__ = "player_bonuses"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in BONUS_STATUSES) + ")", name="status"
        ),
        CheckConstraint("amount_minor >= 0", name="amount_non_negative"),
        CheckConstraint("wagering_required_minor >= 0", name="wagering_required_non_negative"),
        CheckConstraint("wagering_progress_minor >= 0", name="wagering_progress_non_negative"),
        CheckConstraint("converted_minor >= 0", name="converted_non_negative"),
        CheckConstraint("forfeited_minor >= 0", name="forfeited_non_negative"),
        # One open bonus contract per wallet: the bonus balance belongs to it alone.
        Index(
            "uq_player_bonuses_open",
            "user_id",
            "currency",
            unique=True,
            postgresql_where=text("status IN ('pending', 'active')"),
            sqlite_where=text("status IN ('pending', 'active')"),
        ),
        Index("uq_player_bonuses_trigger_ref", "trigger_ref", unique=True),
        Index("ix_player_bonuses_promotion_user", "promotion_id", "user_id"),
        Index("ix_player_bonuses_user_created", "user_id", "created_at"),
        Index("ix_player_bonuses_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    promotion_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("promotions.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    wagering_required_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    wagering_progress_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The rules as they were when the bonus was granted (later edits don't change a contract).
    max_bet_minor: Mapped[int | None] = mapped_column(BigInteger)
    max_cashout_minor: Mapped[int | None] = mapped_column(BigInteger)
    default_contribution: Mapped[int] = mapped_column(Integer, default=100)
    game_contributions: Mapped[Any] = mapped_column(JSON, default=dict)
    #: What triggered the grant: ``payment:<public id>`` (unique: once per deposit).
    trigger_ref: Mapped[str | None] = mapped_column(String(80))
    deposit_minor: Mapped[int | None] = mapped_column(BigInteger)
    voucher_code: Mapped[str | None] = mapped_column(String(64))
    converted_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    forfeited_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Ledger transaction ids: {"grant": .., "convert": .., "forfeit": ..}
    ledger_refs: Mapped[Any] = mapped_column(JSON, default=dict)
    end_reason: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    promotion: Mapped[Promotion] = relationship(lazy="joined")


#: active: spins left; used: every spin played; expired: validity ended with spins left;
#: forfeited: the bonus ended (player, withdrawal, bonus expiry) with spins left.
GRANT_STATUSES = ("active", "used", "expired", "forfeited")
#: A grant issued through an aggregator's API (``free_spins`` docstring): pending until the
#: aggregator accepted it, failed when it refused it, cancelled once withdrawn there.
REMOTE_STATUSES = ("pending", "issued", "failed", "cancelled")


class FreeSpinGrant(Model):
    __tablename__ = "free_spin_grants"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in GRANT_STATUSES) + ")", name="status"
        ),
        CheckConstraint("spins_total > 0", name="spins_total_positive"),
        CheckConstraint(
            "spins_used >= 0 AND spins_used <= spins_total", name="spins_used_in_range"
        ),
        CheckConstraint("spin_value_minor > 0", name="spin_value_positive"),
        CheckConstraint("won_minor >= 0", name="won_non_negative"),
        CheckConstraint("wagering_multiplier >= 0", name="wagering_multiplier"),
        Index("ix_free_spin_grants_user_status", "user_id", "status"),
        Index("ix_free_spin_grants_status_expires", "status", "expires_at"),
        CheckConstraint(
            "remote_status IS NULL OR remote_status IN ("
            + ", ".join(f"'{s}'" for s in REMOTE_STATUSES)
            + ")",
            name="remote_status",
        ),
        Index("ix_free_spin_grants_remote_status", "remote_status"),
        Index("ix_free_spin_grants_provider_ref", "provider_id", "provider_ref"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: What the provider sees as ``free_round_id`` (``fsg_<hex>``, unguessable).
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    bonus_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("player_bonuses.id"), unique=True)
    promotion_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("promotions.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("game_providers.id"))
    game_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("games.id"))
    currency: Mapped[str] = mapped_column(String(8))
    spin_value_minor: Mapped[int] = mapped_column(BigInteger)
    spins_total: Mapped[int] = mapped_column(Integer)
    spins_used: Mapped[int] = mapped_column(Integer, default=0)
    #: Winnings paid so far (bonus money, or cash when the multiplier is 0).
    won_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Copied from the promotion at the claim (winnings x multiplier = wagering).
    wagering_multiplier: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: The provider's own reference of the grant (from its free-rounds API adapter).
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    #: Issued through the aggregator's API (``REMOTE_STATUSES``); None for in-process studios.
    #: The issue id the aggregator sees is ``public_id``: every retry sends the same one.
    remote_status: Mapped[str | None] = mapped_column(String(16))
    issue_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    remote_error: Mapped[str | None] = mapped_column(String(500))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


#: played: the free bet was accepted, the win not yet; settled: win (maybe 0) paid or the
#: round closed; reversed: the provider rolled the free bet back (the spin was given back).
FREE_ROUND_STATUSES = ("played", "settled", "reversed")


class FreeSpinRound(Model):
    __tablename__ = "free_spin_rounds"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in FREE_ROUND_STATUSES) + ")", name="status"
        ),
        CheckConstraint("win_minor >= 0", name="win_non_negative"),
        Index("uq_free_spin_rounds_round", "provider_id", "external_round_id", unique=True),
        Index("ix_free_spin_rounds_grant_status", "grant_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    grant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("free_spin_grants.id"))
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("game_providers.id"))
    external_round_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: The provider's transaction id of the free bet.
    bet_transaction_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="played")
    win_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Loyalty points and levels. Points are not money: they live here, never in a wallet.
#
# * ``LoyaltyLevel``: the level table (Bronze, Silver, Gold, Platinum ...), data seeded by
#   ``loyalty.ensure_levels()``; a player's level is the highest whose ``min_points`` they reach.
# * ``LoyaltyAccount``: one per player; ``points`` = sum of the player's ``LoyaltyEvent.points``
#   (CHECK >= 0), written in the same transaction as the event.
# * ``LoyaltyEvent``: the history, append-only: ``wager`` (+points for an applied stake) and
#   ``reversal`` (-points when that stake is refunded or rolled back, at most once per wager),
#   ``redemption`` (-points spent on a ``LoyaltyReward``) and ``referral`` (+points for a referred
#   player's qualifying first deposit); the last two are keyed by ``reference`` (unique).
# * ``LoyaltyReward``: the operator's redemption catalogue (points -> bonus money or free spins
#   on the terms of a promotion).


EVENT_KINDS = ("wager", "reversal", "redemption", "referral")


class LoyaltyLevel(Model):
    __tablename__ = "loyalty_levels"
    __table_args__ = (CheckConstraint("min_points >= 0", name="min_points_non_negative"),)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    min_points: Mapped[int] = mapped_column(BigInteger, unique=True)
    #: What the level means for the player (shown in the app).
    description: Mapped[str | None] = mapped_column(String(255))


class LoyaltyAccount(Model):
    __tablename__ = "loyalty_accounts"
    __table_args__ = (
        CheckConstraint("points >= 0", name="points_non_negative"),
        CheckConstraint("redeemed_points >= 0", name="redeemed_points_non_negative"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), primary_key=True)
    #: The spendable balance (sum of the events).
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Points spent on rewards, ever: the level follows ``points + redeemed_points`` (the points
    #: earned), so spending points never lowers the level.
    redeemed_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    level_code: Mapped[str | None] = mapped_column(String(32))
    level_reached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LoyaltyEvent(Model):
    __tablename__ = "loyalty_events"
    __table_args__ = (
        CheckConstraint("kind IN ('wager', 'reversal', 'redemption', 'referral')", name="kind"),
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
    provider_transaction_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    #: What a redemption or referral event is for (``redemption:<user>:<request key>``,
    #: ``referral:<referred user>``); unique: each happens once.
    reference: Mapped[str | None] = mapped_column(String(200), unique=True)
    #: For a reversal: the wager event it takes back (unique: taken back once).
    reverses_event_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("loyalty_events.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoyaltyReward(Model):
    """One item of the redemption catalogue: ``points`` buy a bonus on the terms of
    ``promotion_id`` (its currency, wagering multiplier, max bet, validity): ``bonus_amount_minor``
    of bonus money, or, for a ``free_spins`` promotion, its spins on its game."""

    __tablename__ = "loyalty_rewards"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint(
            "bonus_amount_minor IS NULL OR bonus_amount_minor > 0", name="bonus_amount_positive"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    points: Mapped[int] = mapped_column(BigInteger)
    promotion_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("promotions.id"))
    #: Bonus money granted (minor units of the promotion's currency); None for free spins.
    bonus_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
