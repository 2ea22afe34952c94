"""Today folded incrementally: the periodic job rolls today up to a cutoff (``FOLD_LAG``
behind its clock) and marks it; the readers take the rollup rows and fold live only the rows
since the cutoff. Every figure must equal the whole day folded from the raw tables (what the
readers computed before), distinct players included, with rows on both sides of the cutoff,
refunds of pre-cutoff bets posted after it, a row dated before the cutoff but committed after
the fold, a re-fold, and the day re-folded whole once it is over.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.core.extensions import db
from app.reports import financial, rollups
from app.reports.models import RolledDay
from tests.moneykit import fund, open_table

pytestmark = pytest.mark.postgres

DAY = date(2026, 11, 20)


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 20, hour, minute, tzinfo=UTC)


def _figures(fold: rollups.Fold) -> dict[str, Any]:
    """A fold's rows as comparable tuples (every money, count and distinct-player column)."""

    def cols(row: Any, *skip: str) -> tuple:
        return tuple(
            getattr(row, c.key)
            for c in type(row).__table__.columns
            if c.key not in ("id", "rolled_at", *skip)
        )

    return {
        "daily": sorted(cols(r) for r in fold.daily),
        "games": sorted(cols(r) for r in fold.games),
        "providers": sorted(cols(r) for r in fold.providers),
    }


def _incremental(now: datetime) -> rollups.Fold:
    db.session.expire_all()
    p = rollups.plan(DAY, DAY, now=now)
    return p.live[DAY]


def _raw() -> rollups.Fold:
    db.session.expire_all()
    return rollups._fold_day(DAY)


def _cutoff() -> datetime | None:
    db.session.expire_all()
    return db.session.get_one(RolledDay, DAY).cutoff


def _open(client, factory, when: datetime):
    with freeze_time(when, tick=True):
        a = open_table(client, factory, cash=100_00)  # deposit 100.00 (first)
        b = open_table(client, factory, cash=50_00)
    return a, b


@pytest.fixture
def tables(requires_postgres, client, factory):
    return _open(client, factory, at(9, 0))


@pytest.fixture
def late_tables(requires_postgres, client, factory):
    return _open(client, factory, at(22, 50))


def test_today_from_the_rollup_and_the_rows_since_the_cutoff_equals_the_raw_fold(
    tables, client, factory
):
    a, b = tables
    with freeze_time(at(10, 0), tick=True):
        a.bet("b1", "10.00", round_id="r1")
        a.win("w1", "4.00", round_id="r1")
        b.bet("b2", "5.00", round_id="q1")
    # The job at 10:30 folds the day up to 10:28 and marks the cutoff.
    rollups.rollup_day(DAY, now=at(10, 30))
    assert _cutoff() == at(10, 30) - rollups.FOLD_LAG
    with freeze_time(at(10, 40), tick=True):
        a.bet("b3", "3.00", round_id="r2")  # the same player and game: one distinct player
        a.refund("rf1", "b1", round_id="r1")  # a late refund of a pre-cutoff bet
        b.bet("b4", "1.00", round_id="q2")
        fund(a.user_id, 20_00)  # a second deposit: a depositor already counted, not a first
        c = open_table(client, factory, cash=30_00)  # a new player, a new first depositor
        c.bet("c1", "2.00", round_id="s1")
    with freeze_time(at(10, 45), tick=True):
        now = datetime.now(UTC)
        incremental = _incremental(now)
        raw = _raw()
        assert _figures(incremental) == _figures(raw)
        eur = next(r for r in incremental.daily if r.currency == "EUR")
        # 10 + 5 + 3 + 1 + 2 staked, 10 refunded; players A, B, C; deposits of A (2), B, C.
        assert (eur.stakes, eur.wins, eur.bets_count) == (11_00, 4_00, 5)
        assert (eur.unique_players, eur.depositors, eur.first_depositors) == (3, 3, 3)
        assert eur.deposits == 200_00
        # The readers answer the same: the dashboard's totals equal the raw financial report.
        dash = rollups.dashboard(DAY, DAY, currency="EUR")
        fin = financial.financial(DAY, DAY, currency="EUR").totals
        assert dash["totals"]["stakes"] == "11.00" == f"{fin.bets / 100:.2f}"
        assert dash["totals"]["player_days"] == 3
        # A second fold moves the cutoff; still equal; the live part is smaller.
        rollups.rollup_day(DAY, now=now)
        assert _cutoff() == now - rollups.FOLD_LAG
        assert _figures(_incremental(now)) == _figures(_raw())


def test_a_row_committed_after_the_fold_with_an_earlier_time_is_counted_by_the_next_fold(
    tables,
):
    a, b = tables
    with freeze_time(at(10, 0), tick=True):
        a.bet("b1", "10.00", round_id="r1")
    rollups.rollup_day(DAY, now=at(10, 30))
    # A transaction dated 10:20 (before the 10:28 cutoff) that commits only after the fold
    # read the day: the incremental read misses it until the next fold (the documented bound).
    with freeze_time(at(10, 20), tick=True):
        b.bet("late", "7.00", round_id="q1")
        b.refund("late-rf", "late", round_id="q1")
        a.refund("rf1", "b1", round_id="r1")
    assert _figures(_incremental(at(10, 31))) != _figures(_raw())
    # The next run re-folds the day from the start: idempotent, and the late rows are in.
    rollups.rollup_day(DAY, now=at(10, 35))
    rollups.rollup_day(DAY, now=at(10, 35))
    assert _figures(_incremental(at(10, 36))) == _figures(_raw())
    eur = next(r for r in _raw().daily if r.currency == "EUR")
    assert (eur.stakes, eur.bets_count, eur.unique_players) == (0, 2, 2)


def test_the_day_refolded_after_its_end_is_whole_and_read_from_the_tables(late_tables):
    a, b = late_tables
    with freeze_time(at(23, 50), tick=True):
        assert a.bet("b1", "10.00", round_id="r1")["status"] == "ok"
    rollups.rollup_day(DAY, now=at(23, 55))
    with freeze_time(at(23, 59), tick=True):
        # After the cutoff, before midnight.
        assert b.bet("b2", "5.00", round_id="q1")["status"] == "ok"
    # Two minutes after midnight the lag still reaches into the day: a cutoff again.
    rollups.rollup_day(DAY, now=at(23, 59) + timedelta(minutes=2))
    assert _cutoff() is not None
    assert _figures(_incremental(at(23, 59) + timedelta(minutes=2))) == _figures(_raw())
    # The job re-rolls yesterday on every run: once the lag is past, the day is whole.
    nxt = datetime(2026, 11, 21, 0, 10, tzinfo=UTC)
    rollups.rollup_day(DAY, now=nxt)
    assert _cutoff() is None
    db.session.expire_all()
    p = rollups.plan(DAY, DAY, now=nxt)
    assert p.live == {}
    assert p.rolled_until == DAY
    stored = rollups._daily(DAY, DAY, "EUR", p)[DAY]
    assert (stored.stakes, stored.unique_players) == (15_00, 2)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RolledDay)) == 1


def test_a_day_marked_with_a_cutoff_in_the_past_is_not_taken_as_whole(late_tables):
    """A yesterday folded at 23:58 and not yet re-folded after midnight: read as rollup +
    live rest, never as a finished day."""
    a, _ = late_tables
    with freeze_time(at(23, 0), tick=True):
        a.bet("b1", "10.00", round_id="r1")
    rollups.rollup_day(DAY, now=at(23, 10))
    with freeze_time(at(23, 30), tick=True):
        a.bet("b2", "2.00", round_id="r2")
    nxt = datetime(2026, 11, 21, 0, 1, tzinfo=UTC)
    p = rollups.plan(DAY, DAY, now=nxt)
    assert DAY in p.live
    assert p.rolled_until is None
    assert _figures(p.live[DAY]) == _figures(_raw())
