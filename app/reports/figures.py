"""Figures for the dashboard and the reports, computed from the real tables.

Invariants:
* Read-only: nothing here writes. Every figure is a query over the source table, never a
  cached or hand-maintained counter, so it always agrees with the data it describes.
* Day buckets are UTC calendar days; a series has one point per day, zero-filled, oldest first.
* Each domain adds its own section function (``money_kpis``, ``kyc_kpis`` ...) and registers it
  in ``dashboard_overview``; a section is a list of ``Kpi`` rows so the console and the JSON
  twin render them alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.compliance.models import KycSubmission
from app.core.base import utcnow
from app.core.extensions import db
from app.core.money import format_minor
from app.core.replica import reads_replica
from app.identity.models import PLAYER, STAFF_ROLES, User
from app.payments.models import PaymentTransaction
from app.reports import rollups


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    value: int | str
    hint: str | None = None


@dataclass(frozen=True)
class SeriesPoint:
    day: date
    value: int


def _start_of_day(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def players_total() -> int:
    return db.session.scalar(select(func.count(User.id)).where(User.role_id == PLAYER)) or 0


def players_registered_since(since: datetime) -> int:
    return (
        db.session.scalar(
            select(func.count(User.id)).where(User.role_id == PLAYER, User.created_at >= since)
        )
        or 0
    )


def players_logged_in_since(since: datetime) -> int:
    return (
        db.session.scalar(
            select(func.count(User.id)).where(User.role_id == PLAYER, User.last_login_at >= since)
        )
        or 0
    )


def players_by_status() -> dict[str, int]:
    rows = db.session.execute(
        select(User.status, func.count(User.id)).where(User.role_id == PLAYER).group_by(User.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


def staff_total() -> int:
    return db.session.scalar(select(func.count(User.id)).where(User.role_id.in_(STAFF_ROLES))) or 0


def registrations_per_day(days: int = 14, *, now: datetime | None = None) -> list[SeriesPoint]:
    """New player accounts per UTC day for the last ``days`` days (today included)."""
    now = now or utcnow()
    first = now.astimezone(UTC).date() - timedelta(days=days - 1)
    since = _start_of_day(first)
    # Bucket in Python: created_at comes back tz-aware on both PostgreSQL and SQLite, and the
    # 14-day window of one table column is small next to the cost of dialect-specific SQL.
    stamps = db.session.scalars(
        select(User.created_at).where(User.role_id == PLAYER, User.created_at >= since)
    ).all()
    counts: dict[date, int] = {}
    for stamp in stamps:
        day = stamp.astimezone(UTC).date()
        counts[day] = counts.get(day, 0) + 1
    return [
        SeriesPoint(first + timedelta(days=i), counts.get(first + timedelta(days=i), 0))
        for i in range(days)
    ]


def player_kpis(*, now: datetime | None = None) -> list[Kpi]:
    now = now or utcnow()
    day_ago = now - timedelta(hours=24)
    statuses = players_by_status()
    return [
        Kpi("players_total", "Players", players_total()),
        Kpi("players_new_24h", "New players (24 h)", players_registered_since(day_ago)),
        Kpi(
            "players_logged_in_24h",
            "Players signed in (24 h)",
            players_logged_in_since(day_ago),
            hint="Last sign-in within 24 hours",
        ),
        Kpi(
            "players_restricted",
            "Suspended / banned",
            f"{statuses.get('suspended', 0)} / {statuses.get('banned', 0)}",
        ),
        Kpi("staff_total", "Staff accounts", staff_total()),
    ]


def money_overview(currency: str, *, now: datetime | None = None, days: int = 14) -> dict:
    """Today's money KPIs and the per-day money series, from the analytics service (the
    rollups for past days, today folded live)."""
    now = now or utcnow()
    today = now.astimezone(UTC).date()
    report = rollups.financial_report(today - timedelta(days=days - 1), today, currency=currency)
    last = report.rows[-1]
    pending_withdrawals = db.session.scalar(
        select(func.count(PaymentTransaction.id)).where(
            PaymentTransaction.type == "withdrawal", PaymentTransaction.status == "pending"
        )
    )
    pending_kyc = db.session.scalar(
        select(func.count(KycSubmission.id)).where(KycSubmission.status == "pending")
    )

    def money(minor: int) -> str:
        return f"{format_minor(minor, currency)} {currency}"

    kpis = [
        Kpi("bets_today", "Bets today", money(last.bets), hint="Stakes net of refunds, UTC day"),
        Kpi("ggr_today", "GGR today", money(last.ggr), hint="Bets - wins"),
        Kpi("ggr_14d", f"GGR ({days} days)", money(report.totals.ggr)),
        Kpi("deposits_today", "Deposits today", money(last.deposits)),
        Kpi("withdrawals_today", "Withdrawals paid today", money(last.withdrawals)),
        Kpi("pending_withdrawals", "Pending withdrawals", int(pending_withdrawals or 0)),
        Kpi("pending_kyc", "KYC submissions to review", int(pending_kyc or 0)),
    ]
    series = {
        name: [SeriesPoint(r.period, getattr(r, name)) for r in report.rows]
        for name in ("ggr", "deposits", "withdrawals")
    }
    return {"currency": currency, "kpis": kpis, "series": series}


@reads_replica
def dashboard_overview(
    *, now: datetime | None = None, currency: str | None = None
) -> dict[str, Any]:
    """Every dashboard section; other domains add theirs here (money, KYC, providers)."""
    from flask import current_app

    now = now or utcnow()
    money = money_overview(currency or current_app.config["DEFAULT_CURRENCY"], now=now)
    return {
        "generated_at": now,
        "sections": {"players": player_kpis(now=now), "money": money["kpis"]},
        "series": {"registrations_per_day": registrations_per_day(14, now=now)},
        "currency": money["currency"],
        "money_series": money["series"],
    }


def as_json(overview: dict[str, Any]) -> dict[str, Any]:
    """The overview as plain JSON types (for ``/api/admin/dashboard/overview``)."""
    return {
        "generated_at": overview["generated_at"].isoformat(),
        "sections": {
            name: [asdict(k) for k in kpis] for name, kpis in overview["sections"].items()
        },
        "series": {
            name: [{"day": p.day.isoformat(), "value": p.value} for p in points]
            for name, points in overview["series"].items()
        },
        "currency": overview["currency"],
        # Money per day as exact decimal strings in ``currency`` (DESIGN.md money format).
        "money_series": {
            f"{name}_per_day": [
                {"day": p.day.isoformat(), "value": format_minor(p.value, overview["currency"])}
                for p in points
            ]
            for name, points in overview["money_series"].items()
        },
    }
