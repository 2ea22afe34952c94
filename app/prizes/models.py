"""Progressive jackpots and tournaments (issue 9).

Jackpots
* ``JackpotPool``: one pool per (name, currency[, tier]). Its amount is never a counter that every
  bet updates: bets append ``JackpotContribution`` rows and the amount is
  ``seed + rolled_amount + sum(contributions with id > rolled_through_id)``; a periodic job folds
  the tail into ``rolled_amount``. The current cycle holds the contributions with
  ``id > base_contribution_id``.
* ``JackpotWin``: at most one per (pool, cycle) (unique index): the auditable record of a draw
  (trigger, evidence) and, once paid, the ledger transaction.

Tournaments
* ``Tournament``: window, games, scoring, prize table (minor units by rank).
* ``TournamentParticipant``: one row per player; the score columns are PostgreSQL's truth.
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
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model
from app.core.states import StateMachine

JACKPOT_STATUSES = ("active", "paused")
JACKPOT_TRIGGERS = ("random", "must_drop", "drop_time", "manual", "provider")
WIN_STATUSES = ("pending", "paid")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class JackpotPool(Model):
    __tablename__ = "jackpot_pools"
    __table_args__ = (
        CheckConstraint(_in("status", JACKPOT_STATUSES), name="status"),
        CheckConstraint("seed_amount >= 0", name="seed_non_negative"),
        CheckConstraint("contribution_bps > 0 AND contribution_bps <= 10000", name="bps_range"),
        CheckConstraint("cap_amount IS NULL OR cap_amount > seed_amount", name="cap_above_seed"),
        CheckConstraint(
            "must_drop_by IS NULL OR must_drop_by > seed_amount", name="must_drop_above_seed"
        ),
        CheckConstraint("hit_odds IS NULL OR hit_odds >= 1", name="hit_odds_positive"),
        CheckConstraint("min_bet >= 0", name="min_bet_non_negative"),
        CheckConstraint("rolled_amount >= 0", name="rolled_non_negative"),
        CheckConstraint("carry_amount >= 0", name="carry_non_negative"),
        CheckConstraint(
            "drop_window_seconds IS NULL OR drop_window_seconds > 0", name="drop_window_positive"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(8), index=True)
    #: Optional tier label (mini/major/grand); tiers of one product share ``group_code``.
    tier: Mapped[str | None] = mapped_column(String(20))
    group_code: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10), default="active")
    #: What the pool restarts at after a win, minor units (funded by the house).
    seed_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Share of each eligible bet, basis points (100 = 1 %).
    contribution_bps: Mapped[int] = mapped_column(Integer)
    #: Optional ceiling: no contributions are taken once the pool has reached it.
    cap_amount: Mapped[int | None] = mapped_column(BigInteger)
    #: Optional must-drop bound: the pool is won before it reaches this amount.
    must_drop_by: Mapped[int | None] = mapped_column(BigInteger)
    #: Optional random hit: each eligible bet wins with probability 1 / hit_odds.
    hit_odds: Mapped[int | None] = mapped_column(BigInteger)
    #: Smallest bet that contributes and may win, minor units.
    min_bet: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Eligible games (ids); NULL = every game.
    game_ids: Mapped[list[int] | None] = mapped_column(JSON)
    #: Incremented by every win; contributions read it under a key-share lock.
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    #: Contributions with a larger id belong to the current cycle.
    base_contribution_id: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Contributions of the cycle up to this id are summed in ``rolled_amount``.
    rolled_through_id: Mapped[int] = mapped_column(BigInteger, default=0)
    rolled_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Must-drop: the secret point of this cycle (in [seed, must_drop_by)), drawn with
    #: ``secrets``; ``drop_commitment`` = sha256(f"{drop_point}:{drop_salt}") is public.
    drop_point: Mapped[int | None] = mapped_column(BigInteger)
    drop_salt: Mapped[str | None] = mapped_column(String(64))
    drop_commitment: Mapped[str | None] = mapped_column(String(64))
    #: Left in the pool by a provider-reported win smaller than the pool: part of the next
    #: cycle (so seed + contributions - payouts stays exact).
    carry_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The one game provider allowed to report wins of this pool (``jackpot_win`` callback);
    #: NULL = provider reports are refused.
    provider_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("game_providers.id"))
    #: Must-drop by time: each cycle drops within this many seconds of its start.
    drop_window_seconds: Mapped[int | None] = mapped_column(Integer)
    cycle_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Public: the cycle is won no later than this.
    drop_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Secret drop time of this cycle (in [cycle start, deadline)), drawn with ``secrets``;
    #: ``drop_at_commitment`` = sha256(f"{epoch seconds}:{drop_at_salt}") is public.
    drop_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drop_at_salt: Mapped[str | None] = mapped_column(String(64))
    drop_at_commitment: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class JackpotContribution(Model):
    """Append-only: one row per eligible bet and pool; a refunded bet's contribution is
    reversed by a negative row (``reversal_of_id``) while its cycle is still open."""

    __tablename__ = "jackpot_contributions"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_non_zero"),
        # A bet contributes once per pool (also the lookup of a bet's contribution).
        UniqueConstraint("transaction_id", "pool_id", name="uq_jackpot_contribution_bet"),
        Index("ix_jackpot_contributions_pool_id", "pool_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    pool_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("jackpot_pools.id"))
    cycle: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: Our provider-transaction id of the bet.
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    bet_amount: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    #: A reversal row (negative amount): the contribution it takes back.
    reversal_of_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JackpotWin(Model):
    __tablename__ = "jackpot_wins"
    __table_args__ = (
        UniqueConstraint("pool_id", "cycle", name="uq_jackpot_win_cycle"),
        CheckConstraint(_in("trigger", JACKPOT_TRIGGERS), name="trigger"),
        CheckConstraint(_in("status", WIN_STATUSES), name="status"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    pool_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("jackpot_pools.id"), index=True)
    cycle: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    currency: Mapped[str] = mapped_column(String(8))
    trigger: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    #: The contribution (bet) that won; the cycle ends there.
    contribution_id: Mapped[int | None] = mapped_column(BigInteger)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    #: How the draw was made: odds and drawn number, or the must-drop point, salt, commitment.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ledger_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    #: Provider-reported wins: the game round the provider names.
    game_round_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("game_rounds.id"))
    actor_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


TOURNAMENT_ENTRIES = ("free", "opt_in")
TOURNAMENT_SCORING = ("wagered", "won", "multiplier", "net")
TOURNAMENT_STATUSES = ("scheduled", "settled", "cancelled")
#: Upcoming / running / finished are times of a ``scheduled`` tournament; settlement pays its
#: prizes once, cancellation (or deletion before the start) refunds its fees. Both are final.
TOURNAMENT_STATES = StateMachine("tournament", {"scheduled": {"settled", "cancelled"}})


class Tournament(Model):
    __tablename__ = "tournaments"
    __table_args__ = (
        CheckConstraint(_in("entry", TOURNAMENT_ENTRIES), name="entry"),
        CheckConstraint(_in("scoring", TOURNAMENT_SCORING), name="scoring"),
        CheckConstraint(_in("status", TOURNAMENT_STATUSES), name="status"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("min_bet >= 0", name="min_bet_non_negative"),
        CheckConstraint(
            "max_participants IS NULL OR max_participants > 0", name="max_participants_positive"
        ),
        CheckConstraint("entry_fee >= 0", name="entry_fee_non_negative"),
        Index("ix_tournaments_window", "status", "ends_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(8))
    #: Eligible games (ids); NULL = every game.
    game_ids: Mapped[list[int] | None] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entry: Mapped[str] = mapped_column(String(10), default="free")
    scoring: Mapped[str] = mapped_column(String(12), default="wagered")
    min_bet: Mapped[int] = mapped_column(BigInteger, default=0)
    max_participants: Mapped[int | None] = mapped_column(Integer)
    #: Paid from the cash wallet at ``join`` (``tournament_fee``), minor units; refunded if the
    #: tournament is cancelled or deleted. Needs ``entry = opt_in``.
    entry_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Prize per rank: ``[{"amount": minor units, "type": "cash" | "bonus"}, ...]`` (a bare
    #: integer is a cash prize).
    prizes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: Bonus prizes are granted as bonuses of this promotion (its wagering terms apply).
    bonus_promotion_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("promotions.id"))
    status: Mapped[str] = mapped_column(String(12), default="scheduled")
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TournamentParticipant(Model):
    __tablename__ = "tournament_participants"
    __table_args__ = (
        UniqueConstraint("tournament_id", "user_id", name="uq_tournament_participant"),
        Index("ix_tournament_participants_board", "tournament_id", "score"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tournament_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tournaments.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    #: Ranking value: minor units, or for ``multiplier`` the best win/stake times 10 000.
    score: Mapped[int] = mapped_column(BigInteger, default=0)
    wagered: Mapped[int] = mapped_column(BigInteger, default=0)
    won: Mapped[int] = mapped_column(BigInteger, default=0)
    bets: Mapped[int] = mapped_column(Integer, default=0)
    #: When the current score was first reached: the tie rule (earlier is better).
    score_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rank: Mapped[int | None] = mapped_column(Integer)
    prize: Mapped[int | None] = mapped_column(BigInteger)
    #: cash | bonus
    prize_type: Mapped[str | None] = mapped_column(String(8))
    #: paid (cash posted / bonus granted) | awaiting (a bonus prize waits for the player's
    #: open bonus to end; the settlement job retries)
    prize_status: Mapped[str | None] = mapped_column(String(10))
    bonus_id: Mapped[int | None] = mapped_column(BigInteger)
    ledger_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    fee_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    fee_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    fee_refund_transaction_id: Mapped[int | None] = mapped_column(BigInteger)


TOURNAMENT_SCORE_KINDS = ("bet", "win", "reversal")


class TournamentScoreEvent(Model):
    """What one claim did to one tournament's scores: the processed marker of the after-commit
    scoring listener (a second run of the same claim finds it and adds nothing)."""

    __tablename__ = "tournament_score_events"
    __table_args__ = (
        # Once per (tournament, claim, kind). A reversal is keyed by its *bet's* claim: a
        # bet's score is taken back at most once, whichever refund or rollback does it.
        UniqueConstraint(
            "tournament_id", "provider_transaction_id", "kind", name="uq_tournament_score_event"
        ),
        CheckConstraint(_in("kind", TOURNAMENT_SCORE_KINDS), name="kind"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    tournament_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tournaments.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: Our provider-transaction claim id: of the bet or win; for a reversal, of the bet undone.
    provider_transaction_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    #: The stake or win scored (minor units); a reversal takes back its bet's.
    amount: Mapped[int] = mapped_column(BigInteger)
    #: For a reversal: the refund's or rollback's own claim id.
    by_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


LOTTERY_STATUSES = ("scheduled", "drawn", "cancelled")
LOTTERY_PRIZE_TYPES = ("cash", "item")


class LotteryDraw(Model):
    """A draw: tickets on sale in a window, one winning ticket drawn provably fairly.

    Fairness: ``server_seed_hash`` = sha256(server_seed) is public from creation (before sales
    open); after sales close ``public_value`` = sha256 of the sold ticket ids; the winner is
    derived from HMAC-SHA256(server_seed, public_value) and ``server_seed`` is revealed.
    """

    __tablename__ = "lottery_draws"
    __table_args__ = (
        CheckConstraint(_in("status", LOTTERY_STATUSES), name="status"),
        CheckConstraint(_in("prize_type", LOTTERY_PRIZE_TYPES), name="prize_type"),
        CheckConstraint("ticket_price > 0", name="price_positive"),
        CheckConstraint("prize_amount >= 0", name="prize_non_negative"),
        CheckConstraint("max_tickets > 0", name="max_tickets_positive"),
        CheckConstraint("max_per_player > 0", name="max_per_player_positive"),
        CheckConstraint("tickets_sold >= 0 AND tickets_sold <= max_tickets", name="sold_range"),
        CheckConstraint(
            "sales_close_at > sales_open_at AND draw_at >= sales_close_at", name="schedule"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(8))
    prize_type: Mapped[str] = mapped_column(String(8), default="cash")
    #: Cash prize in minor units (0 for an item prize, described in ``prize_description``).
    prize_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    prize_description: Mapped[str | None] = mapped_column(Text)
    ticket_price: Mapped[int] = mapped_column(BigInteger)
    max_tickets: Mapped[int] = mapped_column(Integer)
    max_per_player: Mapped[int] = mapped_column(Integer)
    tickets_sold: Mapped[int] = mapped_column(Integer, default=0)
    sales_open_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sales_close_at: Mapped[datetime] = mapped_column(UTCDateTime)
    draw_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(10), default="scheduled")
    #: Secret until the draw; its hash is the public commitment.
    server_seed: Mapped[str] = mapped_column(String(64))
    server_seed_hash: Mapped[str] = mapped_column(String(64))
    public_value: Mapped[str | None] = mapped_column(String(64))
    winning_ticket_id: Mapped[int | None] = mapped_column(BigInteger)
    winner_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    prize_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotteryTicket(Model):
    __tablename__ = "lottery_tickets"
    __table_args__ = (
        UniqueConstraint("draw_id", "number", name="uq_lottery_ticket_number"),
        CheckConstraint(_in("status", ("active", "refunded")), name="status"),
        Index("ix_lottery_tickets_user", "user_id", "draw_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    draw_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("lottery_draws.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: 1..max_tickets within the draw, in sale order.
    number: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="active")
    #: The purchase's ledger transaction (one per purchase of ``count`` tickets).
    purchase_transaction_id: Mapped[int] = mapped_column(BigInteger)
    refund_transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
