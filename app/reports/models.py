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
    String,
    UniqueConstraint,
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
