"""Daily rollups: fold one UTC day of ledger, bets and payments into ``report_daily``
(day x currency), ``report_daily_games`` (x game) and ``report_daily_providers`` (x provider)
(``app.reports.models``), and read them back for the analytics API and the console.

Invariants:

* ``rollup_day(day)`` is idempotent: it recomputes the day from the source tables and
  replaces the day's rows (delete + insert) in one transaction, under a per-day advisory lock
  on PostgreSQL (two runs of a day take turns), and marks the day rolled (``report_days``).
  Late callbacks, refunds and rollbacks are folded by rolling their day again; the periodic
  job re-rolls today's partial day and yesterday and catches up on days never rolled
  (``rollup_recent``), ``flask jackpotx reports rollup`` backfills any range.
* Figures follow the financial report's definitions (``financial._apply``), so the rollups
  of a day equal ``financial.financial`` for that day.
* A game's movements are the ledger rows posted by provider callbacks (``reference_type``
  ``provider_transaction``), attributed through the callback's round (a refund or rollback
  through the round of the transaction it names); what no round claims goes to ``game_id``
  NULL. Every such movement names its provider (the callback's), round found or not.
* The readers take past days from the rollup tables; today (rolled by the job up to a
  cutoff ``FOLD_LAG`` behind its clock, marked on ``report_days``) is its rollup rows plus a
  live fold of the rows since the cutoff, its distinct players counted once across the
  cutoff (``_fold_since``); a day never rolled is folded live whole (``plan``): the same
  fold, never written by a read. A range of rolled past days reads no ledger row.
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
from app.play.models import Game, GameRound, Provider, ProviderTransaction
from app.reports import financial
from app.reports.models import DailyGameRollup, DailyProviderRollup, DailyRollup, RolledDay
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


@dataclass
class _Provider:
    money: financial.FinancialRow
    bonus_stakes: int = 0
    bets_count: int = 0
    rounds: int = 0
    unique_players: int = 0


@dataclass
class Fold:
    """One day's rollup rows, not attached to the session: what ``rollup_day`` writes and
    what the readers use as they are for a day folded live."""

    day: date
    daily: list[DailyRollup]
    games: list[DailyGameRollup]
    providers: list[DailyProviderRollup]


def _moved() -> Any:
    t = LedgerTransaction
    return t.cash_delta + t.bonus_delta


def _credit() -> Any:
    return case((_moved() > 0, True), else_=False).label("credit")


def _deposited_before(t: Any, day_start: datetime) -> Any:
    """EXISTS: the ledger row's player deposited in its currency before ``day_start``."""
    earlier = aliased(LedgerTransaction)
    return (
        select(earlier.id)
        .where(
            earlier.user_id == t.user_id,
            earlier.currency == t.currency,
            earlier.type == "deposit",
            earlier.created_at < day_start,
        )
        .exists()
    )


def _fold_day(day: date, start: datetime | None = None, end: datetime | None = None) -> Fold:
    """Compute ``day`` from the source tables (read-only); with ``start`` / ``end``, only the
    part of the day in ``[start, end)`` (a first deposit is still one with no deposit before
    the day)."""
    day_start, day_end = financial._bounds(day, day)
    start, end = start or day_start, end or day_end
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

    first = _deposited_before(t, day_start)
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

    games, providers = _fold_games(day, start, end)
    now = datetime.now(UTC)
    return Fold(
        day,
        [
            DailyRollup(
                day=day,
                currency=currency,
                stakes=d.money.bets,
                wins=d.money.wins,
                ggr=d.money.ggr,
                bets_count=d.bets_count,
                unique_players=d.unique_players,
                bonus_cost=d.money.bonus_cost,
                payment_fees=d.money.payment_fees,
                deposits=d.money.deposits,
                withdrawals=d.money.withdrawals,
                depositors=d.depositors,
                first_depositors=d.first_depositors,
                rolled_at=now,
            )
            for currency, d in sorted(out.items())
        ],
        [
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
            for (currency, game_id), g in games.items()
        ],
        [
            DailyProviderRollup(
                day=day,
                currency=currency,
                provider_id=provider_id,
                stakes=v.money.bets,
                wins=v.money.wins,
                ggr=v.money.ggr,
                bonus_stakes=v.bonus_stakes,
                bets_count=v.bets_count,
                rounds=v.rounds,
                unique_players=v.unique_players,
                rolled_at=now,
            )
            for (currency, provider_id), v in sorted(providers.items())
        ],
    )


def _game_key(game_id: Any) -> int | None:
    return None if game_id is None else int(game_id)


def _attributed(start: datetime, end: datetime, *extra: Any) -> Any:
    """The game movements of ``[start, end)`` with their provider and game (a subquery)."""
    t = LedgerTransaction
    pt = aliased(ProviderTransaction)
    ref = aliased(ProviderTransaction)
    rnd = aliased(GameRound)
    round_ext = func.coalesce(pt.external_round_id, ref.external_round_id)
    return (
        select(
            t.id.label("id"),
            t.currency.label("currency"),
            t.type.label("type"),
            t.user_id.label("user_id"),
            _moved().label("moved"),
            t.bonus_delta.label("bonus"),
            pt.provider_id.label("provider_id"),
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
            *extra,
        )
        .subquery()
    )


def _fold_games(
    day: date, start: datetime, end: datetime
) -> tuple[dict[tuple[str, int | None], _Game], dict[tuple[str, int], _Provider]]:
    attributed = _attributed(start, end)
    a = attributed.c
    credit = case((a.moved > 0, True), else_=False)
    out: dict[tuple[str, int | None], _Game] = {}
    by_provider: dict[tuple[str, int], _Provider] = {}

    def row(currency: str, game_id: Any) -> _Game:
        key = (currency, None if game_id is None else int(game_id))
        return out.setdefault(key, _Game(financial.FinancialRow(day)))

    def prow(currency: str, provider_id: Any) -> _Provider:
        key = (currency, int(provider_id))
        return by_provider.setdefault(key, _Provider(financial.FinancialRow(day)))

    # One pass over the day's attributed movements (the join is the fold's cost), grouped
    # finely enough to give the money per game and per provider (the sums add up) and the
    # distinct bettors of each (the player is in the key).
    game_players: dict[tuple[str, int | None], set[int]] = {}
    provider_players: dict[tuple[str, int], set[int]] = {}
    for (
        currency,
        game_id,
        provider_id,
        user_id,
        type_,
        is_credit,
        amount,
        bonus,
        n,
    ) in db.session.execute(
        select(
            a.currency,
            a.game_id,
            a.provider_id,
            a.user_id,
            a.type,
            credit,
            func.coalesce(func.sum(a.moved), 0),
            func.coalesce(func.sum(a.bonus), 0),
            func.count(a.id),
        ).group_by(a.currency, a.game_id, a.provider_id, a.user_id, a.type, credit)
    ).all():
        g, v = row(currency, game_id), prow(currency, provider_id)
        financial._apply(g.money, type_, is_credit, int(amount), 0)
        financial._apply(v.money, type_, is_credit, int(amount), 0)
        if type_ in ("bet", "refund") or (type_ == "rollback" and is_credit):
            v.bonus_stakes -= int(bonus)
        if type_ == "bet":
            g.bets_count += int(n)
            v.bets_count += int(n)
            game_players.setdefault((currency, _game_key(game_id)), set()).add(int(user_id))
            provider_players.setdefault((currency, int(provider_id)), set()).add(int(user_id))
    for key, players in game_players.items():
        out[key].unique_players = len(players)
    for pkey, players in provider_players.items():
        by_provider[pkey].unique_players = len(players)
    r = GameRound
    for currency, provider_id, n in db.session.execute(
        select(r.currency, r.provider_id, func.count(r.id))
        .where(r.created_at >= start, r.created_at < end)
        .group_by(r.currency, r.provider_id)
    ).all():
        prow(currency, provider_id).rounds = int(n)
    return out, by_provider


#: How far behind the clock an incremental fold stops: a row dated before the cutoff but
#: committed after the fold read the day (a transaction still open when the fold ran) is
#: only missed if it commits more than this after its ``created_at``; the next fold (every
#: 5 minutes, and the day re-folded whole once it is over) counts it in any case.
FOLD_LAG = timedelta(minutes=2)


def rollup_day(day: date, *, now: datetime | None = None) -> int:
    """Recompute ``day`` (UTC) from the ledger, bets and payments and replace its rollup rows,
    in one transaction, and mark the day rolled. A day not over ``FOLD_LAG`` ago (today) is
    folded up to ``now - FOLD_LAG`` only, and the mark carries that cutoff: the readers add
    the rest live. Returns the number of ``report_daily`` rows written."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    day_start, day_end = financial._bounds(day, day)
    cutoff: datetime | None = None
    if day_end > now - FOLD_LAG:
        cutoff = max(day_start, now - FOLD_LAG)
    with atomic():
        if db.session.get_bind().dialect.name == "postgresql":
            # Two runs of one day (the periodic job and a backfill) take turns: the second
            # would otherwise insert over the first's fresh rows (SQLite serializes writers).
            db.session.execute(
                text("SELECT pg_advisory_xact_lock(:a, :b)"),
                {"a": _ROLLUP_LOCK, "b": day.toordinal()},
            )
        fold = _fold_day(day, day_start, cutoff or day_end)
        for model in (DailyRollup, DailyGameRollup, DailyProviderRollup):
            db.session.execute(delete(model).where(model.day == day))
        db.session.add_all([*fold.daily, *fold.games, *fold.providers])
        mark = db.session.get(RolledDay, day)
        if mark is None:
            db.session.add(RolledDay(day=day, rolled_at=datetime.now(UTC), cutoff=cutoff))
        else:
            mark.rolled_at = datetime.now(UTC)
            mark.cutoff = cutoff
    return len(fold.daily)


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


#: How far back the periodic job looks for days never rolled, and how many it rolls per run:
#: a fresh install or an upgrade catches up by itself (newest first) instead of folding those
#: days live on every read.
CATCH_UP_DAYS = 90
CATCH_UP_PER_RUN = 7


def rollup_recent(now: datetime | None = None) -> list[date]:
    """The periodic job: today's partial day and yesterday (late callbacks, refunds), then up
    to ``CATCH_UP_PER_RUN`` of the most recent days of the last ``CATCH_UP_DAYS`` never rolled.
    Returns the days rolled."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = now.date()
    done = [today - timedelta(days=1), today]
    for day in done:
        rollup_day(day, now=now)
    oldest = today - timedelta(days=CATCH_UP_DAYS)
    marked = set(db.session.scalars(select(RolledDay.day).where(RolledDay.day >= oldest)))
    missing = [d for d in days_between(oldest, today - timedelta(days=2)) if d not in marked]
    for day in sorted(missing, reverse=True)[:CATCH_UP_PER_RUN]:
        rollup_day(day, now=now)
        done.append(day)
    return done


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


@dataclass
class Plan:
    """Where each day of a range comes from: the rollup tables (``rolled``) or a live fold of
    the source tables (today, and any past day never rolled). Days after today hold nothing."""

    date_from: date
    date_to: date
    rolled_until: date | None
    live: dict[date, Fold]

    @property
    def live_days(self) -> list[date]:
        return sorted(self.live)


def plan(date_from: date, date_to: date, *, now: datetime | None = None) -> Plan:
    """Past days rolled whole come from the rollup tables; a day rolled up to a cutoff
    (today) is its rollup rows plus a live fold since the cutoff (minutes of rows); a day
    never rolled is folded live whole."""
    check_range(date_from, date_to)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = now.date()
    last = min(date_to, today)
    marks = dict(
        db.session.execute(
            select(RolledDay.day, RolledDay.cutoff).where(
                RolledDay.day >= date_from, RolledDay.day <= last
            )
        ).all()
    )
    rolled = {d for d, cutoff in marks.items() if cutoff is None and d < today}
    live: dict[date, Fold] = {}
    for d in days_between(date_from, last):
        if d in rolled:
            continue
        cutoff = marks.get(d)
        live[d] = _fold_since(d, cutoff) if cutoff is not None else _fold_day(d)
    return Plan(date_from, date_to, max(rolled) if rolled else None, live)


@dataclass
class _Players:
    """Who did what in a window, per key: the distinct counts of two windows of one day do
    not add up, their sets do."""

    bettors: dict[str, set[int]] = field(default_factory=dict)
    depositors: dict[str, set[int]] = field(default_factory=dict)
    first_depositors: dict[str, set[int]] = field(default_factory=dict)
    games: dict[tuple[str, int | None], set[int]] = field(default_factory=dict)
    providers: dict[tuple[str, int], set[int]] = field(default_factory=dict)

    def users(self) -> set[int]:
        out: set[int] = set()
        for group in (self.bettors, self.depositors):
            for users in group.values():
                out |= users
        return out


#: Users per ``IN`` list when a window's players are looked up in the earlier part of the day.
_USERS_CHUNK = 2000


def _players(day: date, start: datetime, end: datetime, users: set[int] | None = None) -> _Players:
    """The bettors (per currency, game, provider) and depositors of ``[start, end)`` of
    ``day``; with ``users``, only those (looked up through the (user, created_at) index)."""
    out = _Players()
    if users is not None and not users:
        return out
    chunks: list[list[int] | None] = [None]
    if users is not None:
        ordered = sorted(users)
        chunks = [ordered[i : i + _USERS_CHUNK] for i in range(0, len(ordered), _USERS_CHUNK)]
    day_start = financial._bounds(day, day)[0]
    t = LedgerTransaction
    for chunk in chunks:
        only = [t.user_id.in_(chunk)] if chunk is not None else []
        in_window = (t.created_at >= start, t.created_at < end, *only)
        for currency, user_id in db.session.execute(
            select(t.currency, t.user_id).where(*in_window, t.type == "bet").distinct()
        ).all():
            out.bettors.setdefault(currency, set()).add(int(user_id))
        first = _deposited_before(t, day_start)
        for currency, user_id, is_first in db.session.execute(
            select(t.currency, t.user_id, ~first).where(*in_window, t.type == "deposit").distinct()
        ).all():
            out.depositors.setdefault(currency, set()).add(int(user_id))
            if is_first:
                out.first_depositors.setdefault(currency, set()).add(int(user_id))
        a = _attributed(start, end, *only).c
        for currency, game_id, provider_id, user_id in db.session.execute(
            select(a.currency, a.game_id, a.provider_id, a.user_id)
            .where(a.type == "bet")
            .distinct()
        ).all():
            out.games.setdefault((currency, _game_key(game_id)), set()).add(int(user_id))
            out.providers.setdefault((currency, int(provider_id)), set()).add(int(user_id))
    return out


def _new(now: set[int] | None, before: set[int] | None) -> int:
    return len((now or set()) - (before or set()))


def _copy(row: Any) -> Any:
    """A detached copy of a rollup row (the reader adds to it; the session never sees it)."""
    model = type(row)
    return model(**{c.key: getattr(row, c.key) for c in model.__table__.columns})


def _fold_since(day: date, cutoff: datetime) -> Fold:
    """``day`` as its rollup rows (folded up to ``cutoff``) plus a live fold of
    ``[cutoff, end of day)``: the money adds up, the distinct players of the live part are
    counted only if the earlier part of the day does not hold them already."""
    day_start, day_end = financial._bounds(day, day)
    delta = _fold_day(day, cutoff, day_end)
    since = _players(day, cutoff, day_end)
    before = _players(day, day_start, cutoff, since.users())
    daily = {
        r.currency: _copy(r)
        for r in db.session.scalars(select(DailyRollup).where(DailyRollup.day == day))
    }
    for r in delta.daily:
        d = daily.setdefault(r.currency, _zero(DailyRollup, day, currency=r.currency))
        for name in (
            "stakes",
            "wins",
            "ggr",
            "bets_count",
            "bonus_cost",
            "payment_fees",
            "deposits",
            "withdrawals",
        ):
            setattr(d, name, getattr(d, name) + getattr(r, name))
        d.rolled_at = r.rolled_at
        d.unique_players += _new(since.bettors.get(r.currency), before.bettors.get(r.currency))
        d.depositors += _new(since.depositors.get(r.currency), before.depositors.get(r.currency))
        d.first_depositors += _new(
            since.first_depositors.get(r.currency), before.depositors.get(r.currency)
        )
    games: dict[tuple[str, int | None], DailyGameRollup] = {
        (rg.currency, _game_key(rg.game_id)): _copy(rg)
        for rg in db.session.scalars(select(DailyGameRollup).where(DailyGameRollup.day == day))
    }
    for rg in delta.games:
        key = (rg.currency, _game_key(rg.game_id))
        g = games.setdefault(
            key, _zero(DailyGameRollup, day, currency=rg.currency, game_id=rg.game_id)
        )
        for name in ("stakes", "wins", "ggr", "bets_count"):
            setattr(g, name, getattr(g, name) + getattr(rg, name))
        g.unique_players += _new(since.games.get(key), before.games.get(key))
    providers: dict[tuple[str, int], DailyProviderRollup] = {
        (rp.currency, int(rp.provider_id)): _copy(rp)
        for rp in db.session.scalars(
            select(DailyProviderRollup).where(DailyProviderRollup.day == day)
        )
    }
    for rp in delta.providers:
        pkey = (rp.currency, int(rp.provider_id))
        v = providers.setdefault(
            pkey, _zero(DailyProviderRollup, day, currency=rp.currency, provider_id=rp.provider_id)
        )
        for name in ("stakes", "wins", "ggr", "bonus_stakes", "bets_count", "rounds"):
            setattr(v, name, getattr(v, name) + getattr(rp, name))
        v.unique_players += _new(since.providers.get(pkey), before.providers.get(pkey))
    return Fold(
        day,
        [daily[k] for k in sorted(daily)],
        list(games.values()),
        [providers[k] for k in sorted(providers)],
    )


def _zero(model: Any, day: date, **keys: Any) -> Any:
    values: dict[str, Any] = {
        c.key: 0
        for c in model.__table__.columns
        if c.key not in ("id", "day", "rolled_at", *keys) and not c.primary_key
    }
    return model(day=day, rolled_at=datetime.now(UTC), **keys, **values)


def _rolled_filter(model: Any, p: Plan) -> list[Any]:
    cond = [model.day >= p.date_from, model.day <= p.date_to]
    if p.live:
        cond.append(model.day.notin_(p.live_days))
    return cond


def _daily(
    date_from: date, date_to: date, currency: str, p: Plan | None = None
) -> dict[date, DailyRollup]:
    p = p or plan(date_from, date_to)
    currency = currency.upper()
    rows = db.session.scalars(
        select(DailyRollup).where(DailyRollup.currency == currency, *_rolled_filter(DailyRollup, p))
    ).all()
    out = {r.day: r for r in rows}
    for fold in p.live.values():
        for r in fold.daily:
            if r.currency == currency:
                out[r.day] = r
    return out


def _money(t: Totals, currency: str) -> dict[str, str]:
    names = ("stakes", "wins", "ggr", "bonus_cost", "payment_fees", "ngr")
    out = {name: format_minor(getattr(t, name), currency) for name in names}
    out["deposits"] = format_minor(t.deposits, currency)
    out["withdrawals"] = format_minor(t.withdrawals, currency)
    return out


@reads_replica
def financial_report(
    date_from: date, date_to: date, *, currency: str, group: str = "day"
) -> financial.FinancialReport:
    """``financial.financial``'s report, from the rollups (today incrementally): the same figures,
    without scanning the ledger for the past days."""
    if group not in financial.GROUPS:
        raise ValueError(f"group is one of {', '.join(financial.GROUPS)}")
    currency = currency.upper()
    daily = _daily(date_from, date_to, currency)
    rows: dict[date, financial.FinancialRow] = {}
    for day in days_between(date_from, date_to):
        period = financial.period_of(day, group)
        row = rows.setdefault(period, financial.FinancialRow(period))
        r = daily.get(day)
        if r is not None:
            row.add(
                financial.FinancialRow(
                    period,
                    bets=r.stakes,
                    wins=r.wins,
                    bonus_cost=r.bonus_cost,
                    payment_fees=r.payment_fees,
                    deposits=r.deposits,
                    withdrawals=r.withdrawals,
                )
            )
    ordered = [rows[k] for k in sorted(rows)]
    totals = financial.FinancialRow(date_from)
    for row in ordered:
        totals.add(row)
    return financial.FinancialReport(currency, group, date_from, date_to, ordered, totals)


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


@dataclass
class GameTotals:
    game_id: int | None
    currency: str
    stakes: int = 0
    wins: int = 0
    bets_count: int = 0
    player_days: int = 0

    @property
    def ggr(self) -> int:
        return self.stakes - self.wins


def game_totals(
    date_from: date, date_to: date, *, currency: str | None = None, p: Plan | None = None
) -> list[GameTotals]:
    """Per (game, currency) over the range (one currency, or all when ``None``)."""
    p = p or plan(date_from, date_to)
    g = DailyGameRollup
    cond = _rolled_filter(g, p)
    if currency is not None:
        cond.append(g.currency == currency.upper())
    out: dict[tuple[int | None, str], GameTotals] = {}
    for game_id, cur, s_, w, n, players in db.session.execute(
        select(
            g.game_id,
            g.currency,
            func.sum(g.stakes),
            func.sum(g.wins),
            func.sum(g.bets_count),
            func.sum(g.unique_players),
        )
        .where(*cond)
        .group_by(g.game_id, g.currency)
    ).all():
        out[(game_id, cur)] = GameTotals(game_id, cur, int(s_), int(w), int(n), int(players))
    for fold in p.live.values():
        for r in fold.games:
            if currency is not None and r.currency != currency.upper():
                continue
            t = out.setdefault((r.game_id, r.currency), GameTotals(r.game_id, r.currency))
            t.stakes += r.stakes
            t.wins += r.wins
            t.bets_count += r.bets_count
            t.player_days += r.unique_players
    return list(out.values())


@reads_replica
def games(
    date_from: date, date_to: date, *, currency: str, limit: int = 100, p: Plan | None = None
) -> dict:
    """Per game over the range: stakes, wins, GGR, RTP, bets, player-days; by GGR."""
    currency = currency.upper()
    rows = sorted(
        game_totals(date_from, date_to, currency=currency, p=p),
        key=lambda t: (-t.ggr, t.game_id is None, t.game_id or 0),
    )[:limit]
    ids = [t.game_id for t in rows if t.game_id is not None]
    names = dict(db.session.execute(select(Game.id, Game.name).where(Game.id.in_(ids))).all())
    return {
        "currency": currency,
        "group_by": "game",
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "games": [
            {
                "game_id": t.game_id,
                "name": names.get(t.game_id, "") if t.game_id is not None else "(unattributed)",
                "stakes": format_minor(t.stakes, currency),
                "wins": format_minor(t.wins, currency),
                "ggr": format_minor(t.ggr, currency),
                "rtp": rtp(t.wins, t.stakes),
                "bets_count": t.bets_count,
                "player_days": t.player_days,
            }
            for t in rows
        ],
    }


@dataclass
class ProviderTotals:
    provider_id: int
    code: str = ""
    name: str = ""
    stakes: int = 0
    wins: int = 0
    bonus_stakes: int = 0
    bets_count: int = 0
    rounds: int = 0
    player_days: int = 0

    @property
    def ggr(self) -> int:
        return self.stakes - self.wins

    def add(self, r: DailyProviderRollup) -> None:
        self.stakes += r.stakes
        self.wins += r.wins
        self.bonus_stakes += r.bonus_stakes
        self.bets_count += r.bets_count
        self.rounds += r.rounds
        self.player_days += r.unique_players


def provider_totals(
    date_from: date, date_to: date, *, currency: str, p: Plan | None = None
) -> list[ProviderTotals]:
    """Per provider over the range in ``currency``, highest GGR first."""
    p = p or plan(date_from, date_to)
    currency = currency.upper()
    v = DailyProviderRollup
    out: dict[int, ProviderTotals] = {}
    for provider_id, s_, w, b, n, rounds, players in db.session.execute(
        select(
            v.provider_id,
            func.sum(v.stakes),
            func.sum(v.wins),
            func.sum(v.bonus_stakes),
            func.sum(v.bets_count),
            func.sum(v.rounds),
            func.sum(v.unique_players),
        )
        .where(v.currency == currency, *_rolled_filter(v, p))
        .group_by(v.provider_id)
    ).all():
        out[provider_id] = ProviderTotals(
            provider_id, "", "", int(s_), int(w), int(b), int(n), int(rounds), int(players)
        )
    for fold in p.live.values():
        for r in fold.providers:
            if r.currency == currency:
                out.setdefault(r.provider_id, ProviderTotals(r.provider_id)).add(r)
    for pid, code, name in db.session.execute(
        select(Provider.id, Provider.code, Provider.name).where(Provider.id.in_(list(out)))
    ).all():
        out[pid].code, out[pid].name = code, name
    return sorted(out.values(), key=lambda t: (-t.ggr, t.name, t.provider_id))


@reads_replica
def providers_report(
    date_from: date, date_to: date, *, currency: str
) -> list[financial.ProviderRow]:
    """``financial.providers``'s rows (every provider, by name) with the money and rounds from
    the rollups (today incrementally) and the callback counts from the callback log."""
    currency = currency.upper()
    totals = {t.provider_id: t for t in provider_totals(date_from, date_to, currency=currency)}
    out: dict[str, financial.ProviderRow] = {}
    for provider in db.session.scalars(select(Provider).order_by(Provider.name)):
        row = out[provider.code] = financial.ProviderRow(provider.code, provider.name)
        t = totals.get(provider.id)
        if t is not None:
            row.bets, row.wins, row.rounds = t.stakes, t.wins, t.rounds
    start, end = financial._bounds(date_from, date_to)
    financial.add_callback_counts(out, start, end)
    return list(out.values())


@reads_replica
def providers(date_from: date, date_to: date, *, currency: str, p: Plan | None = None) -> dict:
    """Per provider over the range: stakes, wins, GGR, RTP, bonus stakes, bets, rounds,
    player-days; by GGR."""
    currency = currency.upper()
    return {
        "currency": currency,
        "group_by": "provider",
        "date_from": date_from.isoformat(),
        "date_to": date_to.isoformat(),
        "providers": [
            {
                "provider_id": t.provider_id,
                "code": t.code,
                "name": t.name,
                "stakes": format_minor(t.stakes, currency),
                "wins": format_minor(t.wins, currency),
                "ggr": format_minor(t.ggr, currency),
                "rtp": rtp(t.wins, t.stakes),
                "bonus_stakes": format_minor(t.bonus_stakes, currency),
                "bets_count": t.bets_count,
                "rounds": t.rounds,
                "player_days": t.player_days,
            }
            for t in provider_totals(date_from, date_to, currency=currency, p=p)
        ],
    }


@reads_replica
def dashboard(date_from: date, date_to: date, *, currency: str) -> dict:
    """The range's money and player totals, a GGR series per day and the top 5 games."""
    currency = currency.upper()
    p = plan(date_from, date_to)
    daily = _daily(date_from, date_to, currency, p)
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
        "top_games": games(date_from, date_to, currency=currency, limit=5, p=p)["games"],
        "rolled_at": max(rolled).isoformat() if rolled else None,
        "rolled_until": p.rolled_until.isoformat() if p.rolled_until else None,
        "live_days": [d.isoformat() for d in p.live_days],
    }


#: The analytics page's groupings: periods, then games and providers.
BREAKDOWNS = ("day", "week", "month", "game", "provider")


@dataclass
class BreakdownRow:
    key: str
    label: str
    stakes: int = 0
    wins: int = 0
    bets_count: int = 0
    player_days: int = 0

    @property
    def ggr(self) -> int:
        return self.stakes - self.wins

    @property
    def rtp(self) -> str | None:
        return rtp(self.wins, self.stakes)


@dataclass
class Breakdown:
    currency: str
    group: str
    date_from: date
    date_to: date
    rows: list[BreakdownRow]
    totals: BreakdownRow
    rolled_until: date | None
    live_days: list[date]


@reads_replica
def breakdown(date_from: date, date_to: date, *, currency: str, group: str) -> Breakdown:
    """Stakes, wins, GGR, RTP, bets and player-days per period, game or provider (the
    console's analytics page): one plan, so each live day is folded once."""
    if group not in BREAKDOWNS:
        raise ValueError(f"group is one of {', '.join(BREAKDOWNS)}")
    currency = currency.upper()
    p = plan(date_from, date_to)
    rows: list[BreakdownRow] = []
    if group in financial.GROUPS:
        daily = _daily(date_from, date_to, currency, p)
        periods: dict[date, BreakdownRow] = {}
        for day in days_between(date_from, date_to):
            start = financial.period_of(day, group)
            row = periods.setdefault(start, BreakdownRow(start.isoformat(), start.isoformat()))
            r = daily.get(day)
            if r is not None:
                row.stakes += r.stakes
                row.wins += r.wins
                row.bets_count += r.bets_count
                row.player_days += r.unique_players
        rows = [periods[k] for k in sorted(periods)]
    elif group == "game":
        totals = sorted(
            game_totals(date_from, date_to, currency=currency, p=p),
            key=lambda t: (-t.ggr, t.game_id is None, t.game_id or 0),
        )
        ids = [t.game_id for t in totals if t.game_id is not None]
        names = dict(db.session.execute(select(Game.id, Game.name).where(Game.id.in_(ids))).all())
        rows = [
            BreakdownRow(
                str(t.game_id) if t.game_id is not None else "-",
                names.get(t.game_id, f"#{t.game_id}")
                if t.game_id is not None
                else "(unattributed)",
                t.stakes,
                t.wins,
                t.bets_count,
                t.player_days,
            )
            for t in totals
        ]
    else:
        rows = [
            BreakdownRow(t.code, t.name, t.stakes, t.wins, t.bets_count, t.player_days)
            for t in provider_totals(date_from, date_to, currency=currency, p=p)
        ]
    total = BreakdownRow("total", "Total")
    for row in rows:
        total.stakes += row.stakes
        total.wins += row.wins
        total.bets_count += row.bets_count
        total.player_days += row.player_days
    return Breakdown(currency, group, date_from, date_to, rows, total, p.rolled_until, p.live_days)
