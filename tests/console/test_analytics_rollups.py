"""Daily rollups and the analytics API against a hand-computed scenario.

The financial report's scenario (tests/console/test_financial_report.py: one EUR player on
game A over two UTC days, refunds, rollbacks of a bet and of a win, a bonus granted and
forfeited, a withdrawal paid with a 1.30 fee, USD noise, a bet 30 s after midnight of day 3),
plus a second EUR player on game B on day 1: deposit 30.00, bet 7.00, win 2.00.

    EUR    stakes  wins  GGR    bets players  bonus   fees  NGR     dep     wd    depositors (first)
    day 1  17.00   6.00  11.00  3    2        20.00   0     -9.00   130.00  0     2 (2)
    day 2  20.00   3.00  17.00  2    1        -5.00   1.30  20.70   0       40.00 0 (0)
    total  37.00   9.00  28.00  5    3 (player-days) 15.00 1.30 11.70 130.00 40.00 2 (2)

    per game (days 1-2): A stakes 30.00 wins 7.00 GGR 23.00 RTP 23.33 bets 4 player-days 2
                         B stakes  7.00 wins 2.00 GGR  5.00 RTP 28.57 bets 1 player-days 1
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.core.extensions import db
from app.core.schedule import PERIODIC_JOBS
from app.play.models import Game
from app.reports import financial as financial_reports
from app.reports import jobs as report_jobs
from app.reports import rollups
from app.reports.models import DailyGameRollup, DailyRollup
from tests.console.test_financial_report import scenario  # noqa: F401  (the shared fixture)
from tests.moneykit import open_table

D0, D1, D2, D3 = date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
RANGE = "date_from=2026-11-20&date_to=2026-11-21&currency=EUR"


@pytest.fixture
def both(requires_postgres, scenario, client, factory):  # noqa: F811
    with freeze_time(datetime(2026, 11, 20, 15, 0, tzinfo=UTC), tick=True):
        other = open_table(client, factory, cash=30_00)
        other.bet("c1", "7.00", round_id="q1")
        other.win("c2", "2.00", round_id="q1")
    db.session.expire_all()
    return scenario, other


def _game_name(table) -> str:
    return db.session.scalar(sa.select(Game.name).where(Game.external_id == table.game_external))


def _daily(day: date, currency: str = "EUR") -> DailyRollup:
    db.session.expire_all()
    return db.session.get_one(DailyRollup, (day, currency))


def test_rollup_day_folds_the_hand_computed_figures(both):
    assert rollups.rollup_range(D0, D3) == 4
    assert db.session.get(DailyRollup, (D0, "EUR")) is None  # nothing happened: no row
    d1, d2 = _daily(D1), _daily(D2)
    assert (d1.stakes, d1.wins, d1.ggr, d1.bets_count, d1.unique_players) == (
        17_00, 6_00, 11_00, 3, 2,
    )  # fmt: skip
    assert (d1.bonus_cost, d1.payment_fees, d1.deposits, d1.withdrawals) == (20_00, 0, 130_00, 0)
    assert (d1.depositors, d1.first_depositors) == (2, 2)
    assert (d2.stakes, d2.wins, d2.ggr, d2.bets_count, d2.unique_players) == (
        20_00, 3_00, 17_00, 2, 1,
    )  # fmt: skip
    assert (d2.bonus_cost, d2.payment_fees, d2.deposits, d2.withdrawals) == (-5_00, 1_30, 0, 40_00)
    assert (d2.depositors, d2.first_depositors) == (0, 0)
    assert _daily(D3).stakes == 1_00
    assert _daily(D1, "USD").deposits == 999_00
    # The rollups agree with the live financial report, day by day.
    live = financial_reports.financial(D1, D3, currency="EUR")
    for row in live.rows:
        rolled = _daily(row.period)
        assert (rolled.stakes, rolled.wins, rolled.bonus_cost, rolled.payment_fees) == (
            row.bets, row.wins, row.bonus_cost, row.payment_fees,
        )  # fmt: skip
        assert (rolled.deposits, rolled.withdrawals) == (row.deposits, row.withdrawals)
    games = {
        (g.day, g.game_id): (g.stakes, g.wins, g.ggr, g.bets_count, g.unique_players)
        for g in db.session.scalars(
            sa.select(DailyGameRollup).where(DailyGameRollup.day.in_((D1, D2)))
        )
        if g.currency == "EUR"
    }
    assert all(game_id is not None for _, game_id in games)  # every movement found its game
    assert sorted(games.values()) == [
        (7_00, 2_00, 5_00, 1, 1),  # B, day 1
        (10_00, 4_00, 6_00, 2, 1),  # A, day 1
        (20_00, 3_00, 17_00, 2, 1),  # A, day 2
    ]


def test_rolling_a_day_again_replaces_it_and_folds_late_movements(both):
    _, other = both
    rollups.rollup_day(D1)
    rollups.rollup_day(D1)
    assert db.session.scalar(
        sa.select(sa.func.count()).select_from(DailyRollup).where(DailyRollup.day == D1)
    ) == 2  # EUR and USD, not doubled  # fmt: skip
    assert _daily(D1).stakes == 17_00
    with freeze_time(datetime(2026, 11, 20, 15, 30, tzinfo=UTC), tick=True):
        # A callback of day 1 that lands after the day was rolled.
        assert other.bet("late", "1.50", round_id="q2")["status"] == "ok"
    rollups.rollup_day(D1)
    assert (_daily(D1).stakes, _daily(D1).bets_count) == (18_50, 4)
    assert db.session.scalar(
        sa.select(sa.func.count())
        .select_from(DailyGameRollup)
        .where(DailyGameRollup.day == D1, DailyGameRollup.currency == "EUR")
    ) == 2  # fmt: skip


def test_the_periodic_job_rolls_today_and_yesterday(both):
    assert ("app.reports.jobs.rollup_recent", 300, "default") in PERIODIC_JOBS
    now = datetime(2026, 11, 22, 0, 5, tzinfo=UTC)
    rolled = report_jobs.rollup_recent(now=now)
    assert _daily(D3).stakes == 1_00  # today's partial day
    assert _daily(D2).ggr == 17_00  # yesterday
    # Then the most recent days never rolled, a few per run (a fresh install catches up).
    assert rolled[:3] == [D2, D3, D1]
    assert len(rolled) == 2 + rollups.CATCH_UP_PER_RUN
    assert _daily(D1).ggr == 11_00
    again = report_jobs.rollup_recent(now=now)
    assert again[2] == D1 - timedelta(days=rollups.CATCH_UP_PER_RUN)
    # Once every day of the horizon is marked, a run rolls today and yesterday only.
    rollups.rollup_range(D3 - timedelta(days=rollups.CATCH_UP_DAYS), D3)
    assert report_jobs.rollup_recent(now=now) == [D2, D3]


def test_the_backfill_command_rolls_a_range(both, runner):
    result = runner.invoke(
        args=["jackpotx", "reports", "rollup", "--from", "2026-11-19", "--to", "2026-11-22"]
    )
    assert result.exit_code == 0, result.output
    assert "rolled up 4 day(s)" in result.output
    assert _daily(D1).ggr == 11_00
    assert _daily(D3).stakes == 1_00
    backwards = ["--from", "2026-11-22", "--to", "2026-11-19"]
    bad = runner.invoke(args=["jackpotx", "reports", "rollup", *backwards])
    assert bad.exit_code != 0


@pytest.fixture
def reading(app):
    """The SQL the block runs, as text."""
    seen: list[str] = []

    def capture(conn, cursor, statement, *args):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", capture)


def test_the_analytics_api_serves_the_rollups_only(both, client, factory, token_for, reading):
    table, other = both
    rollups.rollup_range(D1, D3)
    headers = token_for(factory.staff("manager"))
    reading.clear()

    dashboard = client.get(f"/api/admin/analytics/dashboard?{RANGE}", headers=headers)
    assert dashboard.status_code == 200, dashboard.json
    data = dashboard.json["data"]
    assert data["totals"] == {
        "stakes": "37.00",
        "wins": "9.00",
        "ggr": "28.00",
        "bonus_cost": "15.00",
        "payment_fees": "1.30",
        "ngr": "11.70",
        "deposits": "130.00",
        "withdrawals": "40.00",
        "rtp": "24.32",
        "bets_count": 5,
        "player_days": 3,
        "first_depositors": 2,
    }
    assert data["ggr_per_day"] == [
        {"day": "2026-11-20", "value": "11.00"},
        {"day": "2026-11-21", "value": "17.00"},
    ]
    assert [g["ggr"] for g in data["top_games"]] == ["23.00", "5.00"]

    revenue = client.get(f"/api/admin/analytics/revenue?{RANGE}&group=week", headers=headers)
    assert revenue.status_code == 200, revenue.json
    ((week,),) = [revenue.json["data"]["rows"]]
    assert week["period"] == "2026-11-16"
    assert week == {"period": "2026-11-16", **revenue.json["data"]["totals"]}
    assert week["ngr"] == "11.70"
    assert week["bets_count"] == 5
    daily = client.get(f"/api/admin/analytics/revenue?{RANGE}", headers=headers).json["data"]
    assert [r["ngr"] for r in daily["rows"]] == ["-9.00", "20.70"]

    users = client.get(f"/api/admin/analytics/users?{RANGE}", headers=headers).json["data"]
    assert users["days"] == [
        {"day": "2026-11-20", "unique_players": 2, "bets_count": 3, "depositors": 2,
         "first_depositors": 2},
        {"day": "2026-11-21", "unique_players": 1, "bets_count": 2, "depositors": 0,
         "first_depositors": 0},
    ]  # fmt: skip
    assert users["totals"] == {
        "player_days": 3,
        "peak_unique_players": 2,
        "bets_count": 5,
        "first_depositors": 2,
    }

    games = client.get(f"/api/admin/analytics/games?{RANGE}", headers=headers).json["data"]
    assert [{k: g[k] for k in g if k != "game_id"} for g in games["games"]] == [
        {"name": _game_name(table), "stakes": "30.00", "wins": "7.00", "ggr": "23.00",
         "rtp": "23.33", "bets_count": 4, "player_days": 2},
        {"name": _game_name(other), "stakes": "7.00", "wins": "2.00", "ggr": "5.00",
         "rtp": "28.57", "bets_count": 1, "player_days": 1},
    ]  # fmt: skip

    selects = [s for s in reading if s.lstrip().upper().startswith("SELECT")]
    assert any("report_daily" in s for s in selects)
    assert not [s for s in reading if "ledger_transactions" in s or "ledger_entries" in s]
    assert not [s for s in reading if "payment_transactions" in s or "game_rounds" in s]


def test_the_analytics_api_needs_reports_read_and_a_sane_range(client, factory, token_for):
    manager = token_for(factory.staff("manager"))
    for name in ("dashboard", "users", "revenue", "games"):
        url = f"/api/admin/analytics/{name}"
        assert client.get(url).status_code == 401
        assert client.get(url, headers=token_for(factory.staff("support"))).status_code == 403
        empty = client.get(url, headers=manager)
        assert empty.status_code == 200, empty.json
        bad = client.get(f"{url}?date_from=2026-11-21&date_to=2026-11-20", headers=manager)
        assert bad.status_code == 400
        assert bad.json["code"] == "VALIDATION_ERROR"


def test_rollups_and_the_api_on_either_database(client, factory, token_for):
    """The fold and the readers without PostgreSQL-only services (the embedded SQLite run)."""
    with freeze_time(datetime(2026, 11, 20, 12, 0, tzinfo=UTC), tick=True):
        table = open_table(client, factory, cash=50_00)
        table.bet("e1", "12.00", round_id="x1")
        table.win("e2", "30.00", round_id="x1")
        table.bet("e3", "4.00", round_id="x2")
        table.refund("e4", "e3", round_id="x2")
    rollups.rollup_range(D1, D1)
    rollups.rollup_range(D1, D1)
    day = _daily(D1)
    assert (day.stakes, day.wins, day.ggr, day.bets_count, day.unique_players) == (
        12_00, 30_00, -18_00, 2, 1,
    )  # fmt: skip
    assert (day.deposits, day.depositors, day.first_depositors) == (50_00, 1, 1)
    url = "/api/admin/analytics/games?date_from=2026-11-20&date_to=2026-11-20&currency=EUR"
    (game,) = client.get(url, headers=token_for(factory.staff("admin"))).json["data"]["games"]
    assert (game["stakes"], game["wins"], game["ggr"], game["rtp"]) == (
        "12.00", "30.00", "-18.00", "250.00",
    )  # fmt: skip


def test_two_runs_of_one_day_at_once_take_turns(committed_db, both, app):
    """The periodic job and a backfill rolling the same day together: no duplicate-key error,
    one set of rows."""
    errors: list[BaseException] = []

    def roll() -> None:
        with app.app_context():
            try:
                for _ in range(5):
                    rollups.rollup_day(D1)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=roll) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _daily(D1).stakes == 17_00
    assert db.session.scalar(
        sa.select(sa.func.count()).select_from(DailyRollup).where(DailyRollup.day == D1)
    ) == 2  # fmt: skip
