"""Daily rollups, and the queued CSV exports (``report_exports``).

Daily rollups: per UTC day x currency (and x game) summaries folded from the ledger,
bets and payments by ``app.reports.rollups.rollup_day``, read by the analytics API.

Invariants:

* A rollup row is derived data: ``rollup_day(day)`` recomputes a whole day from the source
  tables and replaces that day's rows in one transaction, so a re-run (a late callback, a
  refund, a backfill) leaves exactly what the sources say, never a double count.
* Money columns are signed minor units of ``currency``, with the financial report's
  definitions (``app.reports.financial``): ``stakes`` net of refunds and reversed bets,
  ``wins`` net of reversed wins, ``ggr = stakes - wins``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model


class DailyRollup(Model):
    """One UTC day of one currency."""

    __tablename__ = "report_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(8), primary_key=True)
    stakes: Mapped[int] = mapped_column(BigInteger, default=0)
    wins: Mapped[int] = mapped_column(BigInteger, default=0)
    ggr: Mapped[int] = mapped_column(BigInteger, default=0)
    #: ``bet`` ledger rows (a refunded bet still counts: it was placed).
    bets_count: Mapped[int] = mapped_column(Integer, default=0)
    #: Distinct players with a ``bet`` ledger row that day.
    unique_players: Mapped[int] = mapped_column(Integer, default=0)
    bonus_cost: Mapped[int] = mapped_column(BigInteger, default=0)
    payment_fees: Mapped[int] = mapped_column(BigInteger, default=0)
    deposits: Mapped[int] = mapped_column(BigInteger, default=0)
    withdrawals: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Distinct players with a ``deposit`` row that day / whose first deposit in this
    #: currency it was.
    depositors: Mapped[int] = mapped_column(Integer, default=0)
    first_depositors: Mapped[int] = mapped_column(Integer, default=0)
    rolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DailyGameRollup(Model):
    """One UTC day of one game in one currency; ``game_id`` NULL gathers the game movements
    whose round could not be found (unattributed)."""

    __tablename__ = "report_daily_games"
    __table_args__ = (
        UniqueConstraint("day", "currency", "game_id", name="uq_report_daily_games"),
        Index("ix_report_daily_games_game_day", "game_id", "day"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(8))
    game_id: Mapped[int | None] = mapped_column(BigInteger)
    stakes: Mapped[int] = mapped_column(BigInteger, default=0)
    wins: Mapped[int] = mapped_column(BigInteger, default=0)
    ggr: Mapped[int] = mapped_column(BigInteger, default=0)
    bets_count: Mapped[int] = mapped_column(Integer, default=0)
    unique_players: Mapped[int] = mapped_column(Integer, default=0)
    rolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SinkState(Model):
    """The ClickHouse sink's durable high-water mark of one stream (``app.reports.sink``):
    the (timestamp, id) key of the last source row ClickHouse acknowledged. It advances in
    the transaction that follows the acknowledged insert, never before."""

    __tablename__ = "analytics_sink_state"

    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The keyset position: rows after (last_ts, last_id) are still to export.
    last_ts: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Rows ClickHouse acknowledged for this stream (append-only streams: equals the source
    #: rows at or before the mark, unless a row committed late; ``sink-status --verify``).
    exported_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    batches: Mapped[int] = mapped_column(BigInteger, default=0)
    last_batch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


EXPORT_STATUSES = ("queued", "running", "ready", "failed", "expired")


class ReportExport(Model):
    """A CSV export a staff member asked for: built by a job (``app.reports.exports``), kept
    as a file under ``EXPORT_DIR`` until ``expires_at``, downloadable by that staff member only.
    ``public_id`` names it in URLs (random: ids are not enumerable)."""

    __tablename__ = "report_exports"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'ready', 'failed', 'expired')", name="status"
        ),
        CheckConstraint("rows_done >= 0", name="rows_done"),
        Index("ix_report_exports_requester_created", "requested_by_id", "created_at"),
        Index("ix_report_exports_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    requested_by_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: A key of ``app.reports.exports.KINDS``.
    kind: Mapped[str] = mapped_column(String(32))
    #: The kind's filters, as validated when asked (dates as ISO strings).
    params: Mapped[Any] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    #: Rows the export will hold, once counted (``None`` before the job starts).
    rows_total: Mapped[int | None] = mapped_column(Integer)
    #: The name the download carries; the file on disk is ``storage_name`` (random).
    file_name: Mapped[str] = mapped_column(String(200))
    storage_name: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(300))
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Last change (each progress update): a running export that stops moving lost its job.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        if self.status == "ready":
            return 100
        if not self.rows_total:
            return 0
        return min(99, self.rows_done * 100 // self.rows_total)


class DailyProviderRollup(Model):
    """One UTC day of one game provider in one currency: the provider's callback movements
    (every one names its provider, found round or not), the rounds started and the players
    who bet."""

    __tablename__ = "report_daily_providers"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    currency: Mapped[str] = mapped_column(String(8), primary_key=True)
    provider_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stakes: Mapped[int] = mapped_column(BigInteger, default=0)
    wins: Mapped[int] = mapped_column(BigInteger, default=0)
    ggr: Mapped[int] = mapped_column(BigInteger, default=0)
    #: The part of ``stakes`` paid with bonus money (net of refunds): the provider's share of
    #: the bonus cost. Grants and forfeits themselves name no provider (``report_daily``).
    bonus_stakes: Mapped[int] = mapped_column(BigInteger, default=0)
    bets_count: Mapped[int] = mapped_column(Integer, default=0)
    #: ``game_rounds`` of this provider and currency created that day.
    rounds: Mapped[int] = mapped_column(Integer, default=0)
    unique_players: Mapped[int] = mapped_column(Integer, default=0)
    rolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolledDay(Model):
    """A UTC day ``rollup_day`` has folded: the readers take its figures from the rollup tables
    (no row there = nothing happened). A day without this mark (never rolled) is folded live
    from the source tables. ``cutoff`` set: the rows hold the day up to that instant only
    (today, folded incrementally); the readers add a live fold of the rest."""

    __tablename__ = "report_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cutoff: Mapped[datetime | None] = mapped_column(UTCDateTime)


RTP_FLAG_STATUSES = ("open", "acknowledged", "cleared")
#: A game and currency have at most one flag in these states (the partial unique index).
RTP_FLAG_LIVE = ("open", "acknowledged")
_LIVE_SQL = "status IN ('open', 'acknowledged')"


class RtpFlag(Model):
    """A game whose measured RTP over the check's window departs from its declared RTP by
    more than the tolerance (``app.reports.rtp``).

    ``open`` → ``acknowledged`` (a staff member, audited) → ``cleared`` (the check found the
    game back within tolerance; an open flag clears too). While open or acknowledged, each
    check refreshes the figures; a later departure after ``cleared`` raises a new flag."""

    __tablename__ = "rtp_flags"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in RTP_FLAG_STATUSES) + ")", name="status"
        ),
        CheckConstraint("stakes > 0 AND bets_count > 0", name="significant"),
        Index(
            "uq_rtp_flags_live",
            "game_id",
            "currency",
            unique=True,
            postgresql_where=text(_LIVE_SQL),
            sqlite_where=text(_LIVE_SQL),
        ),
        Index("ix_rtp_flags_status_raised", "status", "raised_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    game_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("games.id"))
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: The games table's RTP when the flag was last refreshed, percent.
    declared_rtp: Mapped[Any] = mapped_column(Numeric(5, 2))
    #: Wins / stakes over the window, percent (may exceed 100).
    measured_rtp: Mapped[Any] = mapped_column(Numeric(9, 2))
    #: The window's figures, minor units of ``currency``.
    stakes: Mapped[int] = mapped_column(BigInteger)
    wins: Mapped[int] = mapped_column(BigInteger)
    bets_count: Mapped[int] = mapped_column(Integer)
    window_from: Mapped[date] = mapped_column(Date)
    window_to: Mapped[date] = mapped_column(Date)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
