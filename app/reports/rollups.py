"""Daily rollups: fold one UTC day of ledger, bets and payments into ``report_daily`` and
``report_daily_games`` (``app.reports.models``), and read them back for the analytics API.

Invariants:

* ``rollup_day(day)`` is idempotent: it recomputes the day from the source tables and
  replaces the day's rows (delete + insert) in one transaction, under a per-day advisory lock
  on PostgreSQL (two runs of a day take turns). Late callbacks, refunds and
  rollbacks are folded by rolling their day again; the periodic job re-rolls today's partial
  day and yesterday (``rollup_recent``), ``flask jackpotx reports rollup`` backfills any range.
* Figures follow the financial report's definitions (``financial._apply``), so the rollups
  of a day equal ``financial.financial`` for that day.
* A game's movements are the ledger rows posted by provider callbacks (``reference_type``
  ``provider_transaction``), attributed through the callback's round (a refund or rollback
  through the round of the transaction it names); what no round claims goes to ``game_id``
  NULL.
* The readers (``revenue``, ``dashboard``, ``users``, ``games``) read only the rollup tables
  (and ``games`` for names): never the ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, and_, case, cast, delete, distinct, func, select, text
from sqlalchemy.orm import aliased

from app.core.db import atomic
from app.core.extensions import db
from app.core.money import format_minor
from app.core.replica import reads_replica
from app.payments.models import PaymentTransaction
from app.play.models import Game, GameRound, ProviderTransaction
from app.reports import financial
from app.reports.models import DailyGameRollup, DailyRollup
from app.wallet.models import LedgerTransaction

log = logging.getLogger(__name__)

MONEY_TYPES = (
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
GAME_TYPES = ("bet", "refund", "rollback", "win", "jackpot_win")
#: Advisory lock class of a day being rolled ("JXRU"; the second key is the day's ordinal).
_ROLLUP_LOCK = 0x4A58_5255
#: Longest window one analytics request may ask for.
MAX_DAYS = financial.MAX_DAYS


@dataclass
class _Day:
    money: financial.FinancialRow
    bets_count: int = 0
    unique_players: int = 0
    depositors: int = 0
    first_depositors: int = 0


@dataclass
class _Game:
    money: financial.FinancialRow
    bets_count: int = 0
    unique_players: int = 0


def _moved() -> Any:
    t = LedgerTransaction
    return t.cash_delta + t.bonus_delta


def _credit() -> Any:
    return case((_moved() > 0, True), else_=False).label("credit")


def _fold_day(day: date) -> tuple[dict[str, _Day], dict[tuple[str, int | None], _Game]]:
    start, end = financial._bounds(day, day)
    t = LedgerTransaction
    in_day = (t.created_at >= start, t.created_at < end)
    out: dict[str, _Day] = {}

    def row(currency: str) -> _Day:
        return out.setdefault(currency, _Day(financial.FinancialRow(day)))

    money = db.session.execute(
        select(
            t.currency,
            t.type,
            _credit(),
            func.coalesce(func.sum(_moved()), 0),
            func.coalesce(func.sum(t.held_delta), 0),
        )
        .where(*in_day, t.type.in_(MONEY_TYPES))
        .group_by(t.currency, t.type, _credit())
    ).all()
    for currency, type_, is_credit, amount, held in money:
        financial._apply(row(currency).money, type_, is_credit, int(amount), int(held))

    for currency, n, players in db.session.execute(
        select(t.currency, func.count(t.id), func.count(distinct(t.user_id)))
        .where(*in_day, t.type == "bet")
        .group_by(t.currency)
    ).all():
        row(currency).bets_count, row(currency).unique_players = int(n), int(players)

    earlier = aliased(LedgerTransaction)
    first = (
        select(earlier.id)
        .where(
            earlier.user_id == t.user_id,
            earlier.currency == t.currency,
            earlier.type == "deposit",
            earlier.created_at < start,
        )
        .exists()
    )
    for currency, depositors, firsts in db.session.execute(
        select(
            t.currency,
            func.count(distinct(t.user_id)),
            func.count(distinct(case((~first, t.user_id), else_=None))),
        )
        .where(*in_day, t.type == "deposit")
        .group_by(t.currency)
    ).all():
        row(currency).depositors, row(currency).first_depositors = int(depositors), int(firsts)

    p = PaymentTransaction
    for currency, fees in db.session.execute(
        select(p.currency, func.coalesce(func.sum(p.fee_minor), 0))
        .where(p.status == "completed", p.processed_at >= start, p.processed_at < end)
        .group_by(p.currency)
    ).all():
        row(currency).money.payment_fees += int(fees)

    return out, _fold_games(day, start, end)


def _fold_games(day: date, start: datetime, end: datetime) -> dict[tuple[str, int | None], _Game]:
    t = LedgerTransaction
    pt = aliased(ProviderTransaction)
    ref = aliased(ProviderTransaction)
    rnd = aliased(GameRound)
    round_ext = func.coalesce(pt.external_round_id, ref.external_round_id)
    attributed = (
        select(
            t.id.label("id"),
            t.currency.label("currency"),
            t.type.label("type"),
            t.user_id.label("user_id"),
            _moved().label("moved"),
            rnd.game_id.label("game_id"),
        )
        # The claim id as a number: the provider transaction's primary key serves the join
        # (only provider_transaction references reach the cast: the filter is on the scan).
        .join(pt, cast(t.reference_id, BigInteger) == pt.id)
        .outerjoin(
            ref,
            and_(ref.provider_id == pt.provider_id, ref.external_id == pt.reference_external_id),
        )
        .outerjoin(rnd, and_(rnd.provider_id == pt.provider_id, rnd.external_round_id == round_ext))
        .where(
            t.reference_type == "provider_transaction",
            t.created_at >= start,
            t.created_at < end,
            t.type.in_(GAME_TYPES),
        )
        .subquery()
    )
    a = attributed.c
    credit = case((a.moved > 0, True), else_=False)
    out: dict[tuple[str, int | None], _Game] = {}

    def row(currency: str, game_id: Any) -> _Game:
        key = (currency, None if game_id is None else int(game_id))
        return out.setdefault(key, _Game(financial.FinancialRow(day)))

    for currency, game_id, type_, is_credit, amount in db.session.execute(
        select(a.currency, a.game_id, a.type, credit, func.coalesce(func.sum(a.moved), 0)).group_by(
            a.currency, a.game_id, a.type, credit
        )
    ).all():
        financial._apply(row(currency, game_id).money, type_, is_credit, int(amount), 0)
    for currency, game_id, n, players in db.session.execute(
        select(a.currency, a.game_id, func.count(a.id), func.count(distinct(a.user_id)))
        .where(a.type == "bet")
        .group_by(a.currency, a.game_id)
    ).all():
        g = row(currency, game_id)
        g.bets_count, g.unique_players = int(n), int(players)
    return out


def rollup_day(day: date) -> int:
    """Recompute ``day`` (UTC) from the ledger, bets and payments and replace its rollup rows,
    in one transaction. Returns the number of ``report_daily`` rows written."""
    with atomic():
        if db.session.get_bind().dialect.name == "postgresql":
            # Two runs of one day (the periodic job and a backfill) take turns: the second
            # would otherwise insert over the first's fresh rows (SQLite serializes writers).
            db.session.execute(
                text("SELECT pg_advisory_xact_lock(:a, :b)"),
                {"a": _ROLLUP_LOCK, "b": day.toordinal()},
            )
        days, games = _fold_day(day)
        db.session.execute(delete(DailyRollup).where(DailyRollup.day == day))
        db.session.execute(delete(DailyGameRollup).where(DailyGameRollup.day == day))
        now = datetime.now(UTC)
        for currency, d in sorted(days.items()):
            m = d.money
            db.session.add(
                DailyRollup(
                    day=day,
                    currency=currency,
                    stakes=m.bets,
                    wins=m.wins,
                    ggr=m.ggr,
                    bets_count=d.bets_count,
                    unique_players=d.unique_players,
                    bonus_cost=m.bonus_cost,
                    payment_fees=m.payment_fees,
                    deposits=m.deposits,
                    withdrawals=m.withdrawals,
                    depositors=d.depositors,
                    first_depositors=d.first_depositors,
                    rolled_at=now,
                )
            )
        for (currency, game_id), g in games.items():
            db.session.add(
                DailyGameRollup(
                    day=day,
                    currency=currency,
                    game_id=game_id,
                    stakes=g.money.bets,
                    wins=g.money.wins,
                    ggr=g.money.ggr,
                    bets_count=g.bets_count,
                    unique_players=g.unique_players,
                    rolled_at=now,
                )
            )
    return len(days)


def days_between(date_from: date, date_to: date) -> Iterator[date]:
    day = date_from
    while day <= date_to:
        yield day
        day += timedelta(days=1)


def rollup_range(date_from: date, date_to: date) -> int:
    """Roll every day of the range, one transaction per day. Returns the days rolled."""
    n = 0
    for day in days_between(date_from, date_to):
        rollup_day(day)
        n += 1
    return n


def rollup_recent(now: datetime | None = None) -> None:
    """The periodic job: today's partial day and yesterday (late callbacks, refunds)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    for day in (today - timedelta(days=1), today):
        rollup_day(day)


# --- readers: rollup tables only ------------------------------------------------------------


def check_range(date_from: date, date_to: date) -> None:
    if date_to < date_from:
        raise ValueError("date_to is before date_from")
    if (date_to - date_from).days >= MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days per request")


@dataclass
class Totals:
    stakes: int = 0
    wins: int = 0
    bets_count: int = 0
    #: Sum of each day's distinct players (a player active on 3 days counts 3).
    player_days: int = 0
    bonus_cost: int = 0
    payment_fees: int = 0
    deposits: int = 0
    withdrawals: int = 0
    depositors: int = 0
    first_depositors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ggr(self) -> int:
        return self.stakes - self.wins

    @property
    def ngr(self) -> int:
        return self.ggr - self.bonus_cost - self.payment_fees

    def add(self, r: DailyRollup) -> None:
        self.stakes += r.stakes
        self.wins += r.wins
        self.bets_count += r.bets_count
        self.player_days += r.unique_players
        self.bonus_cost += r.bonus_cost
        self.payment_fees += r.payment_fees
        self.deposits += r.deposits
        self.withdrawals += r.withdrawals
        self.depositors += r.depositors
        self.first_depositors += r.first_depositors


def rtp(wins: int, stakes: int) -> str | None:
    """Wins / stakes in percent, 2 decimals; ``None`` without stakes."""
    if stakes <= 0:
        return None
    return str((Decimal(wins) * 100 / Decimal(stakes)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _daily(date_from: date, date_to: date, currency: str) -> dict[date, DailyRollup]:
    check_range(date_from, date_to)
    rows = db.session.scalars(
        select(DailyRollup).where(
            DailyRollup.currency == currency.upper(),
            DailyRollup.day >= date_from,
            DailyRollup.day <= date_to,
        )
    ).all()
    return {r.day: r for r in rows}


def _money(t: Totals, currency: str) -> dict[str, str]:
    names = ("stakes", "wins", "ggr", "bonus_cost", "payment_fees", "ngr")
    out = {name: format_minor(getattr(t, name), currency) for name in names}
    out["deposits"] = format_minor(t.deposits, currency)
    out["withdrawals"] = format_minor(t.withdrawals, currency)
    return out


@reads_replica
def revenue(date_from: date, date_to: date, *, currency: str, group: str = "day") -> dict:
    """Money per period (day / ISO week / month), zero-filled, and the range's totals."""
    if group not in financial.GROUPS:
        raise ValueError(f"group is one of {', '.join(financial.GROUPS)}")
    currency = currency.upper()
    daily = _daily(date_from, date_to, currency)
    periods: dict[date, Totals] = {}
    totals = Totals()
    for day in days_between(date_from, date_to):
        bucket = periods.setdefault(financial.period_of(day, group), Totals())
        if day in daily:
            bucket.add(daily[day])
            totals.add(daily[day])
    return {
        "currency": currency,
        "group": group,
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "rows": [
            {"period": p.isoformat(), **_money(t, currency), "bets_count": t.bets_count}
            for p, t in sorted(periods.items())
        ],
        "totals": {**_money(totals, currency), "bets_count": totals.bets_count},
    }


@reads_replica
def users(date_from: date, date_to: date, *, currency: str) -> dict:
    """Players per day: distinct bettors, bets, depositors, first-time depositors."""
    currency = currency.upper()
    daily = _daily(date_from, date_to, currency)
    days: list[dict[str, Any]] = []
    for day in days_between(date_from, date_to):
        r = daily.get(day)
        days.append(
            {
                "day": day.isoformat(),
                "unique_players": r.unique_players if r else 0,
                "bets_count": r.bets_count if r else 0,
                "depositors": r.depositors if r else 0,
                "first_depositors": r.first_depositors if r else 0,
            }
        )
    return {
        "currency": currency,
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "days": days,
        "totals": {
            "player_days": sum(d["unique_players"] for d in days),
            "peak_unique_players": max((int(d["unique_players"]) for d in days), default=0),
            "bets_count": sum(d["bets_count"] for d in days),
            "first_depositors": sum(d["first_depositors"] for d in days),
        },
    }


@reads_replica
def games(date_from: date, date_to: date, *, currency: str, limit: int = 100) -> dict:
    """Per game over the range: stakes, wins, GGR, RTP, bets, player-days; by GGR."""
    check_range(date_from, date_to)
    currency = currency.upper()
    g = DailyGameRollup
    stakes = func.sum(g.stakes)
    wins = func.sum(g.wins)
    rows = db.session.execute(
        select(
            g.game_id,
            Game.name,
            stakes,
            wins,
            func.sum(g.ggr).label("ggr"),
            func.sum(g.bets_count),
            func.sum(g.unique_players),
        )
        .outerjoin(Game, Game.id == g.game_id)
        .where(g.currency == currency, g.day >= date_from, g.day <= date_to)
        .group_by(g.game_id, Game.name)
        .order_by(func.sum(g.ggr).desc(), g.game_id)
        .limit(limit)
    ).all()
    return {
        "currency": currency,
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "games": [
            {
                "game_id": game_id,
                "name": name if game_id is not None else "(unattributed)",
                "stakes": format_minor(int(s), currency),
                "wins": format_minor(int(w), currency),
                "ggr": format_minor(int(ggr), currency),
                "rtp": rtp(int(w), int(s)),
                "bets_count": int(n),
                "player_days": int(players),
            }
            for game_id, name, s, w, ggr, n, players in rows
        ],
    }


@reads_replica
def dashboard(date_from: date, date_to: date, *, currency: str) -> dict:
    """The range's money and player totals, a GGR series per day and the top 5 games."""
    currency = currency.upper()
    daily = _daily(date_from, date_to, currency)
    totals = Totals()
    for r in daily.values():
        totals.add(r)
    rolled: list[datetime] = [r.rolled_at for r in daily.values()]
    return {
        "currency": currency,
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "totals": {
            **_money(totals, currency),
            "rtp": rtp(totals.wins, totals.stakes),
            "bets_count": totals.bets_count,
            "player_days": totals.player_days,
            "first_depositors": totals.first_depositors,
        },
        "ggr_per_day": [
            {
                "day": day.isoformat(),
                "value": format_minor(daily[day].ggr if day in daily else 0, currency),
            }
            for day in days_between(date_from, date_to)
        ],
        "top_games": games(date_from, date_to, currency=currency, limit=5)["games"],
        "rolled_at": max(rolled).isoformat() if rolled else None,
    }
