"""The RTP check: games measured over the window from the rollups against their declared RTP.

Seeded on 2026-11-20 (checked at 2026-11-25 10:00, window 30 days), thresholds 5 bets /
20.00 of stakes / 3 points:

    game      declared  stakes  wins    measured  bets  verdict
    steady    96.00     50.00   48.25   96.50     5     within (+0.50)
    generous  96.00     50.00   75.00   150.00    5     outside (+54.00)
    stingy    96.00     50.00   40.00   80.00     5     outside (-16.00)
    thin      96.00     10.00   50.00   500.00    1     below the floor
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.core import opsettings
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.core.schedule import PERIODIC_JOBS
from app.play.models import Game
from app.reports import jobs as report_jobs
from app.reports import rollups, rtp
from app.reports.models import RtpFlag
from tests.moneykit import open_table

PLAYED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _declare(table, value: str) -> int:
    game = db.session.scalar(sa.select(Game).where(Game.external_id == table.game_external))
    game.rtp = Decimal(value)
    db.session.flush()
    return game.id


def _play(table, prefix: str, stakes: list[str], wins: list[str]) -> None:
    for i, amount in enumerate(stakes):
        table.bet(f"{prefix}b{i}", amount, round_id=f"{prefix}r{i}")
    for i, amount in enumerate(wins):
        table.win(f"{prefix}w{i}", amount, round_id=f"{prefix}r{i}")


def _settings(factory, **values) -> None:
    with atomic():
        opsettings.put_many(values, actor=factory.staff("admin"))


@pytest.fixture
def games(client, factory):
    _settings(
        factory, rtp_window_days=30, rtp_min_bets=5, rtp_min_stakes=20_00, rtp_tolerance_bp=300
    )
    tables = {}
    with freeze_time(PLAYED, tick=True):
        for name in ("steady", "generous", "stingy", "thin"):
            tables[name] = open_table(client, factory, cash=500_00)
        _play(tables["steady"], "s", ["10.00"] * 5, ["48.25"])
        _play(tables["generous"], "g", ["10.00"] * 5, ["40.00", "35.00"])
        _play(tables["stingy"], "t", ["10.00"] * 5, ["40.00"])
        _play(tables["thin"], "n", ["10.00"], ["50.00"])
    ids = {name: _declare(table, "96.00") for name, table in tables.items()}
    db.session.expire_all()
    return tables, ids


def _check() -> rtp.CheckResult:
    with freeze_time(NOW):
        return rtp.check()


def _flags() -> dict[int, RtpFlag]:
    db.session.expire_all()
    return {f.game_id: f for f in db.session.scalars(sa.select(RtpFlag))}


def test_games_outside_the_tolerance_are_flagged_the_rest_are_not(games):
    _, ids = games
    result = _check()
    assert (result.window_from, result.window_to) == (date(2026, 10, 26), date(2026, 11, 24))
    verdicts = {m.game_id: (m.verdict, str(m.measured), m.bets_count) for m in result.measures}
    assert verdicts[ids["steady"]] == ("within", "96.50", 5)
    assert verdicts[ids["generous"]] == ("outside", "150.00", 5)
    assert verdicts[ids["stingy"]] == ("outside", "80.00", 5)
    assert verdicts[ids["thin"]] == ("below_floor", "500.00", 1)
    flags = _flags()
    assert set(flags) == {ids["generous"], ids["stingy"]}
    generous = flags[ids["generous"]]
    assert (generous.status, generous.currency, generous.stakes, generous.wins) == (
        "open", "EUR", 50_00, 75_00,
    )  # fmt: skip
    assert rtp.flag_json(generous)["deviation_pp"] == "54.00"
    raised = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "rtp.flag_raised")
    ).all()
    assert sorted(int(a.target_id) for a in raised) == sorted(f.id for f in flags.values())
    assert all(a.actor_role == "system" for a in raised)


def test_a_second_run_refreshes_the_flag_it_does_not_raise_another(games):
    tables, ids = games
    first = _check()
    with freeze_time(PLAYED.replace(hour=13), tick=True):
        tables["generous"].bet("gx", "10.00", round_id="gxr")
    rollups.rollup_range(date(2026, 11, 20), date(2026, 11, 20))
    second = _check()
    assert second.raised == []
    assert sorted(second.refreshed) == sorted(first.raised)
    flags = db.session.scalars(sa.select(RtpFlag).where(RtpFlag.game_id == ids["generous"])).all()
    assert len(flags) == 1
    assert (flags[0].stakes, str(flags[0].measured_rtp)) == (60_00, "125.00")


def test_a_game_back_within_tolerance_clears_its_flag(games):
    tables, ids = games
    _check()
    with freeze_time(PLAYED.replace(hour=14), tick=True):
        # 100.00 more staked, 69.00 won: 150.00 staked, 144.00 won = 96.00 %.
        _play(tables["generous"], "h", ["10.00"] * 10, ["69.00"])
    rollups.rollup_day(date(2026, 11, 20))
    result = _check()
    flag = _flags()[ids["generous"]]
    assert (flag.status, str(flag.measured_rtp)) == ("cleared", "96.00")
    assert result.cleared == [flag.id]
    assert db.session.scalar(
        sa.select(sa.func.count(AuditLog.id)).where(AuditLog.action == "rtp.flag_cleared")
    ) == 1  # fmt: skip


def test_the_settings_move_the_floor_and_the_tolerance(games, factory):
    _, ids = games
    _settings(factory, rtp_tolerance_bp=10, rtp_min_bets=1, rtp_min_stakes=0)
    _check()
    # 0.50 points now exceed 0.10; one bet now clears the floor.
    assert set(_flags()) == {ids["steady"], ids["generous"], ids["stingy"], ids["thin"]}


def test_a_window_that_misses_the_play_judges_nothing(games, factory):
    _settings(factory, rtp_window_days=3)  # 2026-11-22 .. 2026-11-24: no play
    result = _check()
    assert result.measures == []
    assert _flags() == {}


def test_the_api_lists_flags_and_staff_acknowledge_them_once(games, client, factory, token_for):
    _, ids = games
    _check()
    manager = factory.staff("manager")
    headers = token_for(manager)
    listed = client.get("/api/admin/analytics/rtp?status=open", headers=headers)
    assert listed.status_code == 200, listed.json
    data = listed.json["data"]
    assert data["settings"] == {
        "window_days": 30, "min_bets": 5, "min_stakes_minor": 20_00, "tolerance_pp": "3",
    }  # fmt: skip
    by_game = {f["game_id"]: f for f in data["flags"]}
    assert set(by_game) == {ids["generous"], ids["stingy"]}
    assert by_game[ids["stingy"]]["measured_rtp"] == "80.00"
    assert by_game[ids["stingy"]]["deviation_pp"] == "-16.00"
    flag_id = by_game[ids["generous"]]["id"]

    url = f"/api/admin/analytics/rtp/{flag_id}/acknowledge"
    assert client.post(url, json={}).status_code == 401
    support = token_for(factory.staff("support"))
    assert client.post(url, json={}, headers=support).status_code == 403
    assert client.get("/api/admin/analytics/rtp", headers=support).status_code == 403
    too_long = client.post(url, json={"note": "x" * 501}, headers=headers)
    assert too_long.status_code in (400, 422)
    done = client.post(url, json={"note": "provider confirms a jackpot hit"}, headers=headers)
    assert done.status_code == 200, done.json
    assert done.json["data"]["status"] == "acknowledged"
    assert done.json["data"]["acknowledged_by"] == manager.id
    again = client.post(url, json={}, headers=headers)
    assert again.status_code == 409
    assert again.json["code"] == "RTP_FLAG_NOT_OPEN"
    missing = client.post(
        "/api/admin/analytics/rtp/999999999/acknowledge", json={}, headers=headers
    )
    assert missing.status_code == 404
    (entry,) = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "rtp.flag_acknowledged")
    ).all()
    assert (entry.actor_id, entry.target_id, entry.reason) == (
        manager.id, str(flag_id), "provider confirms a jackpot hit",
    )  # fmt: skip
    # An acknowledged flag is still refreshed by the check, not re-raised.
    assert _check().raised == []
    assert _flags()[ids["generous"]].status == "acknowledged"
    for bad in ("closed", "", "open'--"):
        answer = client.get(f"/api/admin/analytics/rtp?status={bad}", headers=headers)
        assert answer.status_code in (400, 422), bad


def test_the_console_shows_the_flags_and_acknowledges(games, signed_in):
    _, ids = games
    _check()
    client, _staff = signed_in("manager")
    page = client.get("/admin/reports/rtp")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    flag = _flags()[ids["generous"]]
    assert f'id="rtp-flag-{flag.id}"' in html
    assert "150.00 %" in html
    ack = client.post(
        f"/admin/reports/rtp/{flag.id}/acknowledge", data={"note": "seen", "context": "row"}
    )
    assert ack.status_code in (200, 302)
    assert _flags()[ids["generous"]].status == "acknowledged"


def test_the_job_and_the_command(games, runner):
    assert ("app.reports.jobs.check_rtp", 3600, "default") in PERIODIC_JOBS
    with freeze_time(NOW):
        report_jobs.check_rtp()
        result = runner.invoke(args=["jackpotx", "reports", "rtp-check"])
    assert result.exit_code == 0, result.output
    assert "2 outside, 1 within, 1 below the floor" in result.output
    assert "flags raised 0, refreshed 2, cleared 0" in result.output
