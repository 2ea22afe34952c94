"""The financial report: money per period from the ledger, one currency at a time.

Definitions (minor units of ``currency``; every figure is a sum over ledger rows, whose
``cash_delta + bonus_delta`` is the signed movement of the player's wallet):

* **bets**: stakes (``bet`` rows, negated) minus stakes given back (``refund`` rows, and
  ``rollback`` rows that credit the player, i.e. reverse a bet).
* **wins**: ``win`` and ``jackpot_win`` rows, minus ``rollback`` rows that debit the player
  (they reverse a win).
* **GGR** = bets - wins.
* **bonus cost**: bonus money granted (``bonus_grant``) minus bonus money forfeited
  (``bonus_forfeit``).
* **payment fees**: the gateway fees of the deposits and withdrawals completed in the period
  (``payment_transactions.fee_minor``, bucketed by ``processed_at``): the ledger moves the
  player's money, the fee is the operator's cost recorded on the payment.
* **NGR** = GGR - bonus cost - payment fees.
* **deposits**: ``deposit`` rows (cash credited); **withdrawals**: ``withdrawal`` rows (money
  paid out of the held balance).

Periods are UTC calendar days, ISO weeks (starting Monday) or calendar months, zero-filled.
Read-only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import case, func, select

from app.core import csvsafe
from app.core.extensions import db
from app.core.money import format_minor
from app.core.replica import reads_replica
from app.identity.models import PLAYER, User
from app.payments.models import PaymentTransaction
from app.play.models import GameRound, Provider, ProviderCallback
from app.wallet.models import LedgerTransaction

GROUPS = ("day", "week", "month")
FIGURES = (
    "bets",
    "wins",
    "ggr",
    "bonus_cost",
    "payment_fees",
    "ngr",
    "deposits",
    "withdrawals",
)
#: Longest window one request may ask for (a report, not a data export of the ledger).
MAX_DAYS = 731


@dataclass
class FinancialRow:
    period: date
    bets: int = 0
    wins: int = 0
    bonus_cost: int = 0
    payment_fees: int = 0
    deposits: int = 0
    withdrawals: int = 0

    @property
    def ggr(self) -> int:
        return self.bets - self.wins

    @property
    def ngr(self) -> int:
        return self.ggr - self.bonus_cost - self.payment_fees

    def add(self, other: FinancialRow) -> None:
        for f in fields(self):
            if f.name != "period":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def figures(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIGURES}


@dataclass
class FinancialReport:
    currency: str
    group: str
    date_from: date
    date_to: date
    rows: list[FinancialRow]
    totals: FinancialRow


def period_of(day: date, group: str) -> date:
    if group == "week":
        return day - timedelta(days=day.weekday())
    if group == "month":
        return day.replace(day=1)
    return day


def _periods(date_from: date, date_to: date, group: str) -> list[date]:
    out: list[date] = []
    day = date_from
    while day <= date_to:
        start = period_of(day, group)
        if not out or out[-1] != start:
            out.append(start)
        day += timedelta(days=1)
    return out


def _utc_day(column):
    """The UTC calendar day of a timestamp column, as SQL."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    start = datetime(date_from.year, date_from.month, date_from.day, tzinfo=UTC)
    end = datetime(date_to.year, date_to.month, date_to.day, tzinfo=UTC) + timedelta(days=1)
    return start, end


def _apply(row: FinancialRow, type_: str, is_credit: bool, amount: int, held: int) -> None:
    """Add one grouped ledger sum to a row (the definitions in the module docstring)."""
    if type_ == "bet" or type_ == "refund" or (type_ == "rollback" and is_credit):
        row.bets -= amount
    elif type_ in ("win", "jackpot_win") or type_ == "rollback":
        row.wins += amount
    elif type_ in ("bonus_grant", "bonus_forfeit"):
        row.bonus_cost += amount
    elif type_ == "deposit":
        row.deposits += amount
    elif type_ == "withdrawal":
        row.withdrawals -= amount + held


@reads_replica
def financial(
    date_from: date, date_to: date, *, currency: str, group: str = "day"
) -> FinancialReport:
    if group not in GROUPS:
        raise ValueError(f"group is one of {', '.join(GROUPS)}")
    if date_to < date_from:
        raise ValueError("date_to is before date_from")
    if (date_to - date_from).days >= MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days per report")
    currency = currency.upper()
    start, end = _bounds(date_from, date_to)
    rows = {p: FinancialRow(p) for p in _periods(date_from, date_to, group)}

    t = LedgerTransaction
    moved = t.cash_delta + t.bonus_delta
    day = _utc_day(t.created_at).label("day")
    credit = case((moved > 0, True), else_=False).label("credit")
    ledger = db.session.execute(
        select(
            day,
            t.type,
            credit,
            func.coalesce(func.sum(moved), 0),
            func.coalesce(func.sum(t.held_delta), 0),
        )
        .where(t.currency == currency, t.created_at >= start, t.created_at < end)
        .where(
            t.type.in_(
                (
                    "bet",
                    "refund",
                    "rollback",
                    "win",
                    "jackpot_win",
                    "bonus_grant",
                    "bonus_forfeit",
                    "deposit",
                    "withdrawal",
                )
            )
        )
        .group_by(day, t.type, credit)
    ).all()
    for raw_day, type_, is_credit, amount, held in ledger:
        _apply(rows[period_of(_as_date(raw_day), group)], type_, is_credit, int(amount), int(held))

    p = PaymentTransaction
    fee_day = _utc_day(p.processed_at).label("day")
    fees = db.session.execute(
        select(fee_day, func.coalesce(func.sum(p.fee_minor), 0))
        .where(
            p.currency == currency,
            p.status == "completed",
            p.processed_at >= start,
            p.processed_at < end,
        )
        .group_by(fee_day)
    ).all()
    for raw_day, amount in fees:
        rows[period_of(_as_date(raw_day), group)].payment_fees += int(amount)

    ordered = [rows[k] for k in sorted(rows)]
    totals = FinancialRow(date_from)
    for row in ordered:
        totals.add(row)
    return FinancialReport(currency, group, date_from, date_to, ordered, totals)


def report_json(report: FinancialReport) -> dict[str, Any]:
    c = report.currency

    def money(row: FinancialRow) -> dict[str, str]:
        return {name: format_minor(value, c) for name, value in row.figures().items()}

    return {
        "currency": c,
        "group": report.group,
        "date_from": report.date_from.isoformat(),
        "date_to": report.date_to.isoformat(),
        "rows": [{"period": r.period.isoformat(), **money(r)} for r in report.rows],
        "totals": money(report.totals),
    }


def to_csv(header: list[str], rows: list[list[Any]]) -> str:
    """A header and rows as CSV text, through the formula-injection neutraliser."""
    buf = io.StringIO()
    writer = csvsafe.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def report_rows(report: FinancialReport) -> tuple[list[str], list[list[Any]]]:
    """One line per period plus a total line; amounts as exact decimal strings."""
    c = report.currency
    rows = []
    for row in [*report.rows, report.totals]:
        label = row.period.isoformat() if row is not report.totals else "total"
        rows.append([label, c, *(format_minor(v, c) for v in row.figures().values())])
    return ["period", "currency", *FIGURES], rows


def report_csv(report: FinancialReport) -> str:
    return to_csv(*report_rows(report))


# --- providers ----------------------------------------------------------------------------------


@dataclass
class ProviderRow:
    code: str
    name: str
    rounds: int = 0
    bets: int = 0
    wins: int = 0
    callbacks: int = 0
    callback_errors: int = 0

    @property
    def ggr(self) -> int:
        return self.bets - self.wins

    @property
    def rtp(self) -> Decimal | None:
        """Wins / bets in percent (2 decimals); ``None`` without bets."""
        if self.bets <= 0:
            return None
        return (Decimal(self.wins) * 100 / Decimal(self.bets)).quantize(
            Decimal("0.01"), ROUND_HALF_UP
        )


@reads_replica
def providers(date_from: date, date_to: date, *, currency: str) -> list[ProviderRow]:
    """Per provider: rounds started, bets, wins, GGR, RTP (from the ledger rows the provider's
    callbacks posted, source ``provider:<code>``) and callbacks / callbacks not answered ok."""
    if date_to < date_from or (date_to - date_from).days >= MAX_DAYS:
        raise ValueError(f"date_to must not be before date_from, at most {MAX_DAYS} days")
    currency = currency.upper()
    start, end = _bounds(date_from, date_to)
    out = {
        p.code: ProviderRow(p.code, p.name)
        for p in db.session.scalars(select(Provider).order_by(Provider.name))
    }
    t = LedgerTransaction
    moved = t.cash_delta + t.bonus_delta
    credit = case((moved > 0, True), else_=False).label("credit")
    ledger = db.session.execute(
        select(t.source, t.type, credit, func.coalesce(func.sum(moved), 0))
        .where(
            t.currency == currency,
            t.created_at >= start,
            t.created_at < end,
            t.source.like("provider:%"),
            t.type.in_(("bet", "refund", "rollback", "win", "jackpot_win")),
        )
        .group_by(t.source, t.type, credit)
    ).all()
    for source, type_, is_credit, amount in ledger:
        code = source.split(":", 1)[1]
        row = out.setdefault(code, ProviderRow(code, code))
        money = FinancialRow(date_from)
        _apply(money, type_, is_credit, int(amount), 0)
        row.bets += money.bets
        row.wins += money.wins
    rounds = db.session.execute(
        select(Provider.code, func.count(GameRound.id))
        .join(Provider, Provider.id == GameRound.provider_id)
        .where(
            GameRound.currency == currency,
            GameRound.created_at >= start,
            GameRound.created_at < end,
        )
        .group_by(Provider.code)
    ).all()
    for code, n in rounds:
        out.setdefault(code, ProviderRow(code, code)).rounds = int(n)
    add_callback_counts(out, start, end)
    return list(out.values())


def add_callback_counts(out: dict[str, ProviderRow], start: datetime, end: datetime) -> None:
    """Callbacks received and callbacks not answered ok per provider code, from the callback
    log (an operations log, not money: no rollup holds it)."""
    c = ProviderCallback
    calls = db.session.execute(
        select(
            c.provider_code,
            func.count(c.id),
            func.coalesce(func.sum(case((c.verdict != "ok", 1), else_=0)), 0),
        )
        .where(c.created_at >= start, c.created_at < end)
        .group_by(c.provider_code)
    ).all()
    for code, n, errors in calls:
        row = out.setdefault(code, ProviderRow(code, code))
        row.callbacks, row.callback_errors = int(n), int(errors)


PROVIDER_COLUMNS = ("rounds", "bets", "wins", "ggr", "rtp", "callbacks", "callback_errors")


def provider_json(row: ProviderRow, currency: str) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "rounds": row.rounds,
        "bets": format_minor(row.bets, currency),
        "wins": format_minor(row.wins, currency),
        "ggr": format_minor(row.ggr, currency),
        "rtp": None if row.rtp is None else str(row.rtp),
        "callbacks": row.callbacks,
        "callback_errors": row.callback_errors,
    }


def providers_rows(rows: list[ProviderRow], currency: str) -> tuple[list[str], list[list[Any]]]:
    out = []
    for row in rows:
        data = provider_json(row, currency)
        out.append(
            [
                row.code,
                row.name,
                currency,
                *("" if data[k] is None else data[k] for k in PROVIDER_COLUMNS),
            ]
        )
    return ["code", "name", "currency", *PROVIDER_COLUMNS], out


def providers_csv(rows: list[ProviderRow], currency: str) -> str:
    return to_csv(*providers_rows(rows, currency))


__all__ = ["FIGURES", "GROUPS", "FinancialReport", "FinancialRow", "financial", "providers"]


# --- players ------------------------------------------------------------------------------------


@dataclass
class PlayersDay:
    day: date
    registrations: int = 0
    first_deposits: int = 0
    active: int = 0


@dataclass
class PlayersReport:
    date_from: date
    date_to: date
    days: list[PlayersDay]
    #: country → (registrations, first-time depositors) in the range.
    countries: list[tuple[str, int, int]]
    #: "R1"/"R7"/"R30" → (cohort size, returned, percent or None).
    retention: dict[str, tuple[int, int, Decimal | None]]


RETENTION_DAYS = (1, 7, 30)


@reads_replica
def players(date_from: date, date_to: date) -> PlayersReport:
    """Registrations, first-time depositors (first ``deposit`` ledger row of a player, any
    currency) and active players (distinct players with a ``bet`` ledger row) per UTC day;
    the country split of registrations and first deposits; and play retention: of the players
    registered in the range, how many placed a bet exactly N days after their registration day
    (R1, R7, R30; a cohort member whose day N is still in the future is not counted)."""
    if date_to < date_from or (date_to - date_from).days >= MAX_DAYS:
        raise ValueError(f"date_to must not be before date_from, at most {MAX_DAYS} days")
    start, end = _bounds(date_from, date_to)
    days = {
        date_from + timedelta(days=i): PlayersDay(date_from + timedelta(days=i))
        for i in range((date_to - date_from).days + 1)
    }

    reg_day = _utc_day(User.created_at).label("day")
    registered = db.session.execute(
        select(User.id, reg_day, User.country).where(
            User.role_id == PLAYER, User.created_at >= start, User.created_at < end
        )
    ).all()
    countries: dict[str, list[int]] = {}
    for _id, day, country in registered:
        days[_as_date(day)].registrations += 1
        countries.setdefault(country or "—", [0, 0])[0] += 1

    t = LedgerTransaction
    first = (
        select(t.user_id, func.min(t.created_at).label("first_at"))
        .where(t.type == "deposit")
        .group_by(t.user_id)
        .subquery()
    )
    first_day = _utc_day(first.c.first_at).label("day")
    ftds = db.session.execute(
        select(first_day, User.country)
        .join(User, User.id == first.c.user_id)
        .where(User.role_id == PLAYER, first.c.first_at >= start, first.c.first_at < end)
    ).all()
    for day, country in ftds:
        days[_as_date(day)].first_deposits += 1
        countries.setdefault(country or "—", [0, 0])[1] += 1

    bet_day = _utc_day(t.created_at).label("day")
    active = db.session.execute(
        select(bet_day, func.count(func.distinct(t.user_id)))
        .where(t.type == "bet", t.created_at >= start, t.created_at < end)
        .group_by(bet_day)
    ).all()
    for day, n in active:
        days[_as_date(day)].active = int(n)

    today = datetime.now(UTC).date()
    cohort = {uid: _as_date(day) for uid, day, _c in registered}
    retention: dict[str, tuple[int, int, Decimal | None]] = {}
    played: set[tuple[int, date]] = set()
    if cohort:
        window_end = _bounds(date_to, date_to + timedelta(days=max(RETENTION_DAYS)))[1]
        played = {
            (uid, _as_date(day))
            for uid, day in db.session.execute(
                select(t.user_id, bet_day)
                .where(
                    t.type == "bet",
                    t.user_id.in_(list(cohort)),
                    t.created_at >= start,
                    t.created_at < window_end,
                )
                .distinct()
            ).all()
        }
    for n in RETENTION_DAYS:
        eligible = [uid for uid, day in cohort.items() if day + timedelta(days=n) <= today]
        back = sum(1 for uid in eligible if (uid, cohort[uid] + timedelta(days=n)) in played)
        pct = (
            (Decimal(back) * 100 / Decimal(len(eligible))).quantize(Decimal("0.01"), ROUND_HALF_UP)
            if eligible
            else None
        )
        retention[f"R{n}"] = (len(eligible), back, pct)
    return PlayersReport(
        date_from,
        date_to,
        [days[k] for k in sorted(days)],
        sorted(((c, r, f) for c, (r, f) in countries.items()), key=lambda x: (-x[1], x[0])),
        retention,
    )


def players_json(report: PlayersReport) -> dict[str, Any]:
    return {
        "date_from": report.date_from.isoformat(),
        "date_to": report.date_to.isoformat(),
        "days": [
            {
                "day": d.day.isoformat(),
                "registrations": d.registrations,
                "first_deposits": d.first_deposits,
                "active": d.active,
            }
            for d in report.days
        ],
        "countries": [
            {"country": c, "registrations": r, "first_deposits": f} for c, r, f in report.countries
        ],
        "retention": {
            name: {"cohort": size, "returned": back, "percent": None if pct is None else str(pct)}
            for name, (size, back, pct) in report.retention.items()
        },
    }


def players_rows(report: PlayersReport) -> tuple[list[str], list[list[Any]]]:
    rows: list[list[Any]] = [
        [d.day.isoformat(), d.registrations, d.first_deposits, d.active] for d in report.days
    ]
    return ["day", "registrations", "first_deposits", "active"], rows


def players_csv(report: PlayersReport) -> str:
    return to_csv(*players_rows(report))
