"""JxOriginals: the built-in game studio's own tables (the provider's side of the world).

Nothing here references the casino's wallet or users: the studio knows a player only by the
reference the casino's ``authenticate`` callback gave it, exactly like an outside provider.
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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model

ROUND_STATUSES = (
    "placing",  # round written, bet callback not answered yet
    "rejected",  # the wallet refused the bet; no money moved
    "rollback_pending",  # bet outcome unknown (network); rollback not acknowledged yet
    "rolled_back",  # the wallet acknowledged the rollback of the bet
    "win_pending",  # bet accepted, result fixed, win callback not acknowledged yet
    "closing",  # win acknowledged, end_round not acknowledged yet
    "settled",  # win and end_round acknowledged (or a demo round)
)


class OriginalsCredential(Model):
    """The studio's callback secret when ``JXORIGINALS_SECRET`` is not set (encrypted at rest)."""

    __tablename__ = "originals_credentials"

    provider_code: Mapped[str] = mapped_column(String(50), primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OriginalsSeed(Model):
    """A server/client seed pair; the server seed stays secret until the pair is rotated."""

    __tablename__ = "originals_seeds"
    __table_args__ = (
        CheckConstraint("next_nonce >= 0", name="nonce_non_negative"),
        CheckConstraint("status IN ('active', 'revealed')", name="status"),
        # At most one active pair per player: rotation is a status change, never a second row.
        Index(
            "uq_originals_seeds_active_player",
            "player_ref",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: The casino's player reference (``authenticate``) or ``demo:<session>``.
    player_ref: Mapped[str] = mapped_column(String(100), index=True)
    #: Fernet-encrypted while secret; also kept after reveal (``server_seed`` below is public).
    server_seed_encrypted: Mapped[str] = mapped_column(Text)
    #: hex SHA-256 of the server seed: the commitment shown before the first round.
    server_seed_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: Published once the pair is rotated; ``None`` while active.
    server_seed: Mapped[str | None] = mapped_column(String(64))
    client_seed: Mapped[str] = mapped_column(String(64))
    #: The nonce the next round of this pair will use.
    next_nonce: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revealed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OriginalsSession(Model):
    """A launched game: the casino's session token, the player reference, the last balance."""

    __tablename__ = "originals_sessions"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_non_negative"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: Our own unguessable token, the only thing in the play page URL.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    #: The casino's session token (sent back in every callback); ``None`` for demo play.
    casino_session_token: Mapped[str | None] = mapped_column(String(255), unique=True)
    player_ref: Mapped[str] = mapped_column(String(100))
    game_code: Mapped[str] = mapped_column(String(50))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    currency: Mapped[str] = mapped_column(String(8))
    #: Demo: the play-money balance itself. Real: the last balance the wallet answered (display).
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OriginalsRound(Model):
    """One bet on one game: its provably fair inputs, result and settlement progress."""

    __tablename__ = "originals_rounds"
    __table_args__ = (
        UniqueConstraint("seed_id", "nonce", name="uq_originals_rounds_seed_nonce"),
        CheckConstraint("stake > 0", name="stake_positive"),
        CheckConstraint("payout IS NULL OR payout >= 0", name="payout_non_negative"),
        CheckConstraint(f"status IN {ROUND_STATUSES!r}", name="status"),
        Index("ix_originals_rounds_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: Public round id (the ``round_id`` in callbacks).
    round_ref: Mapped[str] = mapped_column(String(40), unique=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("originals_sessions.id"), index=True)
    seed_id: Mapped[int] = mapped_column(ForeignKey("originals_seeds.id"))
    nonce: Mapped[int] = mapped_column(Integer)
    game_code: Mapped[str] = mapped_column(String(50))
    demo: Mapped[bool] = mapped_column(Boolean, default=False)
    currency: Mapped[str] = mapped_column(String(8))
    stake: Mapped[int] = mapped_column(BigInteger)
    payout: Mapped[int | None] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: HMAC of the round (hex) and the game's result, fixed when the round is written.
    digest: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="placing")
    error_code: Mapped[str | None] = mapped_column(String(40))
    #: Balance the wallet answered last for this round (minor units).
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The casino's free-round grant this round was played from (stake not taken).
    free_round_ref: Mapped[str | None] = mapped_column(String(40))


class OriginalsFreeRound(Model):
    """Free rounds the casino registered with the studio (its free-rounds API): the studio's
    own record, so the game page can offer them. The casino's grant stays authoritative: it
    consumes the spin again on the bet callback and refuses one it does not have."""

    __tablename__ = "originals_free_rounds"
    __table_args__ = (
        CheckConstraint("spins_played >= 0 AND spins_played <= spins_total", name="spins"),
        CheckConstraint("stake > 0", name="stake_positive"),
        Index("ix_originals_free_rounds_player", "player_ref", "game_code", "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: The casino's grant id (``free_round_id`` on the callbacks).
    grant_ref: Mapped[str] = mapped_column(String(40), unique=True)
    player_ref: Mapped[str] = mapped_column(String(100))
    game_code: Mapped[str] = mapped_column(String(50))
    currency: Mapped[str] = mapped_column(String(8))
    stake: Mapped[int] = mapped_column(BigInteger)
    spins_total: Mapped[int] = mapped_column(Integer)
    spins_played: Mapped[int] = mapped_column(Integer, default=0)
    #: active | cancelled (the casino withdrew the grant)
    status: Mapped[str] = mapped_column(String(16), default="active")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
