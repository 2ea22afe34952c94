"""Per-provider rollups (``report_daily_providers``), ``group_by=provider`` in the analytics
API, and the readers' plan: rolled past days from the rollups, today and never-rolled days
folded live (the same figures either way)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.core.extensions import db
from app.play.models import GameRound, Provider
from app.reports import financial as financial_reports
from app.reports import rollups
from app.reports.models import DailyProviderRollup, RolledDay
from tests.console.test_analytics_rollups import both  # noqa: F401  (the shared fixture)
from tests.console.test_financial_report import scenario  # noqa: F401
from tests.moneykit import open_table

D1, D2, D3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)


def _provider_id(table) -> int:
    return db.session.scalar(sa.select(Provider.id).where(Provider.code == table.provider_code))


def _rows(day: date) -> dict[int, DailyProviderRollup]:
    db.session.expire_all()
    return {
        r.provider_id: r
        for r in db.session.scalars(
            sa.select(DailyProviderRollup).where(
                DailyProviderRollup.day == day, DailyProviderRollup.currency == "EUR"
            )
        )
    }


def test_a_rolled_day_per_provider_equals_the_live_provider_report(both):  # noqa: F811
    table, other = both
    rollups.rollup_range(D1, D3)
    for day in (D1, D2, D3):
        rolled = _rows(day)
        live = {
            r.code: r
            for r in financial_reports.providers(day, day, currency="EUR")
            if r.bets or r.wins or r.rounds
        }
        codes = {db.session.get_one(Provider, pid).code: r for pid, r in rolled.items()}
        assert set(codes) == set(live), day
        for code, r in codes.items():
            assert (r.stakes, r.wins, r.ggr, r.rounds) == (
                live[code].bets, live[code].wins, live[code].ggr, live[code].rounds,
            ), (day, code)  # fmt: skip
    d1 = _rows(D1)
    a, b = d1[_provider_id(table)], d1[_provider_id(other)]
    # Day 1: A took 10.00 + 5.00 (refunded) and paid 4.00; B took 7.00 and paid 2.00.
    assert (a.stakes, a.wins, a.ggr, a.bets_count, a.rounds, a.unique_players) == (
        10_00, 4_00, 6_00, 2, 2, 1,
    )  # fmt: skip
    assert (b.stakes, b.wins, b.ggr, b.bets_count, b.rounds, b.unique_players) == (
        7_00, 2_00, 5_00, 1, 1, 1,
    )  # fmt: skip
    # The per-provider rows add up to the day's game movements.
    assert sum(r.stakes for r in d1.values()) == rollups._daily(D1, D1, "EUR")[D1].stakes


def test_a_late_refund_re_folds_its_day(both):  # noqa: F811
    _table, other = both
    rollups.rollup_day(D1)
    before = _rows(D1)[_provider_id(other)]
    assert (before.stakes, before.bets_count) == (7_00, 1)
    with freeze_time(datetime(2026, 11, 20, 18, 0, tzinfo=UTC), tick=True):
        other.bet("late-b", "3.00", round_id="q9")
        assert other.refund("late-rf", "late-b", round_id="q9")["status"] == "ok"
        other.bet("late-c", "2.50", round_id="q10")
    # Rolled before: the rollup still says what it said (the readers trust a rolled day) ...
    assert _rows(D1)[_provider_id(other)].stakes == 7_00
    rollups.rollup_day(D1)
    after = _rows(D1)[_provider_id(other)]
    # ... until the day is rolled again: the refunded stake nets out, the new one counts.
    assert (after.stakes, after.bets_count, after.rounds) == (9_50, 3, 3)
    assert len(_rows(D1)) == 2  # replaced, not added to


def test_stakes_paid_with_bonus_money_are_the_providers_bonus_stakes(client, factory):
    with freeze_time(datetime(2026, 11, 20, 12, 0, tzinfo=UTC), tick=True):
        table = open_table(client, factory, cash=0, bonus=20_00)
        table.bet("x1", "6.00", round_id="z1")
        table.bet("x2", "4.00", round_id="z2")
        table.refund("x3", "x2", round_id="z2")
    rollups.rollup_day(D1)
    row = _rows(D1)[_provider_id(table)]
    assert (row.stakes, row.bonus_stakes) == (6_00, 6_00)


def test_never_rolled_days_and_today_are_folded_live_with_the_same_figures(both):  # noqa: F811
    table, _ = both
    live = rollups.providers(D1, D3, currency="EUR")
    assert rollups.plan(D1, D3).live_days == [D1, D2, D3]  # nothing rolled yet
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RolledDay)) == 0
    rollups.rollup_range(D1, D3)
    assert rollups.plan(D1, D3).live_days == []
    assert rollups.providers(D1, D3, currency="EUR") == live
    by_code = {p["code"]: p for p in live["providers"]}
    a = by_code[table.provider_code]
    # A over days 1-3: stakes 10 + 20 + 1 = 31.00 (b2 refunded, b4 rolled back), wins 4 + 3.
    assert (a["stakes"], a["wins"], a["ggr"], a["rtp"]) == ("31.00", "7.00", "24.00", "22.58")
    assert (a["bets_count"], a["rounds"], a["player_days"]) == (5, 5, 3)
    # Today is always folded live, even when a rollup row of today exists.
    today = datetime.now(UTC).date()
    assert rollups.plan(today, today).live_days == [today]


def test_the_analytics_api_groups_by_provider(both, client, factory, token_for):  # noqa: F811
    table, other = both
    rollups.rollup_range(D1, D2)
    headers = token_for(factory.staff("manager"))
    url = "/api/admin/analytics/games?date_from=2026-11-20&date_to=2026-11-21&currency=EUR"
    got = client.get(f"{url}&group_by=provider", headers=headers)
    assert got.status_code == 200, got.json
    data = got.json["data"]
    assert data["group_by"] == "provider"
    assert [(p["code"], p["ggr"], p["rounds"]) for p in data["providers"]] == [
        (table.provider_code, "23.00", 4),
        (other.provider_code, "5.00", 1),
    ]
    assert client.get(url, headers=headers).json["data"]["group_by"] == "game"
    for bad in ("providers", "", "game;drop", "\x00"):
        answer = client.get(f"{url}&group_by={bad}", headers=headers)
        assert answer.status_code in (400, 422), bad
        assert answer.json["code"] == "VALIDATION_ERROR"


@pytest.mark.postgres
def test_rounds_count_per_provider_and_currency(both):  # noqa: F811
    table, _ = both
    rollups.rollup_day(D2)
    pid = _provider_id(table)
    started = db.session.scalar(
        sa.select(sa.func.count(GameRound.id)).where(
            GameRound.provider_id == pid,
            GameRound.created_at >= datetime(2026, 11, 21, tzinfo=UTC),
            GameRound.created_at < datetime(2026, 11, 22, tzinfo=UTC),
        )
    )
    assert _rows(D2)[pid].rounds == started == 2
