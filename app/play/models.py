"""Game catalog, launch sessions, rounds and the provider-callback records.

* ``Provider``: a game studio calling our seamless wallet; its callback secret is encrypted
  at rest (``app.core.crypto``) and never returned by the API.
* ``GameSession``: what a launch hands to the provider: an unguessable token with an expiry.
* ``GameRound``: the player's view of play (one row per provider round), totals in minor units.
* ``ProviderTransaction``: the idempotency record of every money callback, unique per
  (provider, provider transaction id). A ``tombstone`` row reserves the id of a bet that was
  rolled back before it arrived, so the late bet is refused.
* ``ProviderNonce``: the nonces a provider signed its requests with (Slotegrator-style), kept
  for the clock-skew window so a captured request cannot be sent again.
* ``ProviderCallback``: the operator's log of every callback, whatever the verdict.
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
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model
from app.core.states import StateMachine

GAME_STATUSES = ("active", "inactive", "maintenance")
ROUND_STATUSES = ("open", "closed", "cancelled")
#: A round takes bets while open; ``end_round`` or stale settlement closes it, and stale
#: settlement cancels it when its stakes are refunded. Closed and cancelled are final.
ROUND_STATES = StateMachine("game round", {"open": {"closed", "cancelled"}})
#: Wire protocols a provider can speak (``app.play.callbacks.adapters``).
PROVIDER_PROTOCOLS = ("native", "pragmatic", "hub88", "softswiss", "slotegrator", "evolution")
PROVIDER_ACTIONS = (
    "authenticate", "balance", "bet", "win", "refund", "rollback", "end_round", "jackpot_win",
    "promo_win",
)  # fmt: skip


class Provider(Model):
    __tablename__ = "game_providers"
    __table_args__ = (
        CheckConstraint(
            "protocol IN (" + ", ".join(f"'{p}'" for p in PROVIDER_PROTOCOLS) + ")",
            name="protocol",
        ),
        CheckConstraint("stale_round_policy IN ('refund', 'close')", name="stale_round_policy"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    #: Callback secret, Fernet-encrypted with ENCRYPTION_KEY (HMAC/hash protocols; a
    #: key-pair protocol has none, see ``app.play.callbacks.adapters``).
    secret_enc: Mapped[str] = mapped_column(String(500))
    #: Wire protocol of its callbacks: one of ``PROVIDER_PROTOCOLS``.
    protocol: Mapped[str] = mapped_column(String(16), default="native")
    #: Key-pair protocols (Hub88): the aggregator's public key (PEM) that verifies its calls.
    peer_public_key: Mapped[str | None] = mapped_column(Text)
    #: Key-pair protocols: our private key (PEM, Fernet-encrypted) that signs our answers;
    #: generated when the provider is added, its public half given to the aggregator.
    private_key_enc: Mapped[str | None] = mapped_column(Text)
    #: The aggregator's API base URL (free rounds, game lists), where the protocol has one.
    api_url: Mapped[str | None] = mapped_column(String(500))
    #: ISO-4217 codes it can play; empty = any currency we support.
    currencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: IPs/CIDRs allowed to call back; empty = any (the signature still applies).
    ip_allowlist: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: ``https://studio.example/launch?token={token}&game={game}`` ({token} {game} {currency}
    #: {lang} {demo} {provider} are filled in, URL-encoded).
    launch_url: Mapped[str | None] = mapped_column(String(500))
    #: What ``rounds settle-stale`` does with a round never finished: refund stakes or close.
    stale_round_policy: Mapped[str] = mapped_column(String(16), default="refund")
    logo_url: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class GameCategory(Model):
    __tablename__ = "game_categories"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    slug: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    icon: Mapped[str | None] = mapped_column(String(255))


class Game(Model):
    __tablename__ = "games"
    __table_args__ = (
        UniqueConstraint("provider_id", "external_id", name="uq_games_provider_external"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in GAME_STATUSES) + ")", name="status"
        ),
        CheckConstraint("min_bet >= 0 AND max_bet >= min_bet", name="bet_range"),
        CheckConstraint("rtp IS NULL OR (rtp > 0 AND rtp <= 100)", name="rtp_range"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    provider_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("game_providers.id"), index=True
    )
    category_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("game_categories.id"), index=True
    )
    #: The provider's own id of the game (what its callbacks send as ``game_id``).
    external_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200), index=True)
    slug: Mapped[str | None] = mapped_column(String(200))
    #: slot, table, live, crash, dice ...
    game_type: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    #: Theoretical return to player in percent (96.50).
    rtp: Mapped[Any] = mapped_column(Numeric(5, 2), nullable=True)
    volatility: Mapped[str | None] = mapped_column(String(16))
    #: Stake limits in minor units of the player's currency (0/0 = provider decides).
    min_bet: Mapped[int] = mapped_column(BigInteger, default=0)
    max_bet: Mapped[int] = mapped_column(BigInteger, default=0)
    thumbnail_url: Mapped[str | None] = mapped_column(String(500))
    banner_url: Mapped[str | None] = mapped_column(String(500))
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False)
    is_new: Mapped[bool] = mapped_column(Boolean, default=False)
    is_hot: Mapped[bool] = mapped_column(Boolean, default=False)
    has_demo: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    play_count: Mapped[int] = mapped_column(BigInteger, default=0)
    favorite_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    provider: Mapped[Provider] = relationship(lazy="joined")
    category: Mapped[GameCategory | None] = relationship(lazy="joined")


class GameFavorite(Model):
    __tablename__ = "game_favorites"
    __table_args__ = (UniqueConstraint("user_id", "game_id", name="uq_game_favorites_user_game"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    game_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("games.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GameSession(Model):
    __tablename__ = "game_sessions"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: 256-bit random, URL-safe; what the provider sends back as ``session_token``.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    game_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("games.id"))
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("game_providers.id"))
    currency: Mapped[str] = mapped_column(String(8))
    #: Demo sessions move no money: money callbacks on them are refused.
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GameRound(Model):
    __tablename__ = "game_rounds"
    __table_args__ = (
        UniqueConstraint("provider_id", "external_round_id", name="uq_game_rounds_provider_round"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in ROUND_STATUSES) + ")", name="status"
        ),
        CheckConstraint(
            "total_bet >= 0 AND total_win >= 0 AND total_refund >= 0 "
            "AND bet_cash >= 0 AND bet_bonus >= 0",
            name="totals_non_negative",
        ),
        Index("ix_game_rounds_user_created", "user_id", "created_at"),
        Index("ix_game_rounds_status_updated", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("game_providers.id"))
    external_round_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    game_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("games.id"), index=True)
    currency: Mapped[str] = mapped_column(String(8))
    #: open → closed (end_round) or cancelled (stale settlement refunded it).
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: Sums in minor units: stakes, wins, stakes given back by refund/rollback.
    total_bet: Mapped[int] = mapped_column(BigInteger, default=0)
    total_win: Mapped[int] = mapped_column(BigInteger, default=0)
    total_refund: Mapped[int] = mapped_column(BigInteger, default=0)
    #: How the stakes were paid: wins go back in the same proportion.
    bet_cash: Mapped[int] = mapped_column(BigInteger, default=0)
    bet_bonus: Mapped[int] = mapped_column(BigInteger, default=0)
    bets_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ProviderNonce(Model):
    """A nonce seen from a provider; the primary key makes its second use an insert that does
    nothing (``app.play.callbacks.nonces``)."""

    __tablename__ = "provider_nonces"

    provider_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("game_providers.id"), primary_key=True
    )
    nonce: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: When it was first seen: rows older than the clock-skew window are pruned.
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ProviderTransaction(Model):
    __tablename__ = "provider_transactions"
    __table_args__ = (
        UniqueConstraint(
            "provider_id", "external_id", name="uq_provider_transactions_provider_external"
        ),
        # Only rows that name a reference (refunds, rollbacks, wins of another transaction):
        # a bet adds no entry, and a claim's lookup by transaction id cannot pick this index.
        Index(
            "ix_provider_transactions_reference",
            "provider_id",
            "reference_external_id",
            postgresql_where=text("reference_external_id IS NOT NULL"),
            sqlite_where=text("reference_external_id IS NOT NULL"),
        ),
        CheckConstraint("state IN ('applied', 'noop', 'tombstone')", name="state"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    provider_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("game_providers.id"))
    #: The provider's transaction id.
    external_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(16))
    #: applied (money moved or round changed), noop (answered ok, nothing to do),
    #: tombstone (reserved by a rollback that arrived first).
    state: Mapped[str] = mapped_column(String(16), default="applied")
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    external_round_id: Mapped[str | None] = mapped_column(String(100))
    reference_external_id: Mapped[str | None] = mapped_column(String(100))
    currency: Mapped[str | None] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    #: SHA-256 of the request's money-relevant content: a replay must match it exactly.
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: Our answer, as first given (replayed verbatim to duplicates).
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    bonus_balance_after: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProviderCallback(Model):
    __tablename__ = "provider_callbacks"
    __table_args__ = (
        Index("ix_provider_callbacks_provider_created", "provider_code", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    provider_code: Mapped[str] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(String(32))
    transaction_id: Mapped[str | None] = mapped_column(String(100), index=True)
    round_id: Mapped[str | None] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    #: The request as received (parsed; the raw body when it was not parseable).
    payload: Mapped[Any] = mapped_column(JSON, nullable=True)
    #: ``ok`` or the error code answered.
    verdict: Mapped[str] = mapped_column(String(32))
    response: Mapped[Any] = mapped_column(JSON, nullable=True)
    signature_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    balance_before: Mapped[int | None] = mapped_column(BigInteger)
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    latency_ms: Mapped[float | None] = mapped_column(Numeric(10, 3))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    remote_ip: Mapped[str | None] = mapped_column(String(64))
    replay_of_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
