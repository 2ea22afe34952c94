"""The ClickHouse event sink against chDB (the ClickHouse engine in-process): the DDL applies,
the streams' rows insert, the documented queries give the PostgreSQL reports' figures for the
same data, and each source row counts once however often it is sent (re-runs, a crash
between the insert and the mark, a ClickHouse outage)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.db import atomic
from app.core.extensions import db
from app.core.money import format_minor
from app.core.schedule import PERIODIC_JOBS
from app.identity.models import LoginEvent
from app.play.models import GameRound
from app.reports import clickhouse, clickhouse_schema, financial, rollups, sink
from app.reports import jobs as report_jobs
from app.reports.clickhouse import ChdbWriter, ClickHouseUnavailable
from app.reports.models import DailyGameRollup, DailyRollup, SinkState
from app.wallet.models import LedgerEntry, LedgerTransaction
from tests.console.test_analytics_rollups import both  # noqa: F401  (the shared scenario)
from tests.console.test_financial_report import scenario  # noqa: F401
from tests.moneykit import fund, open_table

D1, D2, D3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
RANGE = {"date_from": D1, "date_to": D3}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "analytics.md"


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("chdb"))


@pytest.fixture
def ch(chdb_dir) -> Iterator[ChdbWriter]:
    """A fresh ClickHouse database (on the process's one chDB session) with the schema."""
    writer = ChdbWriter(chdb_dir, f"jx_test_{secrets.token_hex(4)}")
    clickhouse.init_schema(writer)
    yield writer
    writer.command(f"DROP DATABASE IF EXISTS `{writer.database}`")


def export(writer, **kw) -> dict[str, int]:
    kw.setdefault("settle_seconds", 0)
    return sink.run(writer, **kw)


def scalar(writer, sql: str):
    (row,) = writer.query(sql.replace("{db}", f"`{writer.database}`"))
    return next(iter(row.values()))


def pg_count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def marks() -> dict[str, tuple]:
    db.session.expire_all()
    return {s.stream: (s.last_ts, s.last_id) for s in db.session.scalars(sa.select(SinkState))}


# --- schema -------------------------------------------------------------------------------------


def test_the_schema_applies_twice_and_every_table_dedups_by_its_source_key(ch):
    clickhouse.init_schema(ch)  # idempotent
    tables = {
        r["name"]: r
        for r in ch.query(
            "SELECT name, engine, partition_key, sorting_key FROM system.tables "
            f"WHERE database = '{ch.database}'"
        )
    }
    assert set(tables) == set(clickhouse_schema.TABLES)
    for name, row in tables.items():
        assert row["engine"] == "ReplacingMergeTree", name
        assert row["partition_key"] == "toYYYYMM(created_at)", name
    assert tables["ledger_transactions"]["sorting_key"] == "id"
    assert tables["player_events"]["sorting_key"] == "source, source_id"


def test_the_sink_job_is_scheduled_and_does_nothing_without_a_url(app):
    assert ("app.reports.jobs.export_to_clickhouse", 60, "default") in PERIODIC_JOBS
    assert app.config["CLICKHOUSE_URL"] == ""
    assert report_jobs.export_to_clickhouse() == {"enabled": False}
    off = sink.status()
    assert off["enabled"] is False
    assert {s["behind"] for s in off["streams"]} == {None}  # off: no counting


def test_a_bad_url_is_refused_clearly():
    with pytest.raises(ValueError, match="chdb:///dir or http"):
        clickhouse.connect("ftp://example.org/x")
    with pytest.raises(ValueError, match="plain identifier"):
        clickhouse.connect("chdb:///tmp/x?database=a;DROP")
    assert (
        clickhouse.redacted("https://jx:s3cret@ch.example:8443/jackpotx")
        == "https://jx:***@ch.example:8443/jackpotx"
    )


@settings(max_examples=25, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_any_text_survives_the_insert_literal(chdb_dir, text):
    """Player-controlled text (a login reason, a country) cannot break out of its literal."""
    writer = ChdbWriter(chdb_dir, "jx_literals")
    writer.command("CREATE DATABASE IF NOT EXISTS jx_literals")
    writer.command("CREATE TABLE IF NOT EXISTS jx_literals.t (s String) ENGINE = Memory")
    writer.command("TRUNCATE TABLE jx_literals.t")
    writer.command(f"INSERT INTO jx_literals.t (s) VALUES ({clickhouse.literal(text)})")
    assert writer.query("SELECT s FROM jx_literals.t") == [{"s": text}]


# --- the figures --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_the_example_queries_give_the_postgresql_reports_figures(both, ch):  # noqa: F811
    exported = export(ch)
    assert exported["ledger"] == pg_count(LedgerTransaction)
    assert exported["ledger_entries"] == pg_count(LedgerEntry)
    assert exported["rounds"] == pg_count(GameRound)

    # Money per day and currency = the financial report, day by day (EUR and USD).
    rows = clickhouse.run_query(ch, "financial_per_day", **RANGE)
    for currency in ("EUR", "USD"):
        live = financial.financial(D1, D3, currency=currency)
        by_day = {r["day"]: r for r in rows if r["currency"] == currency}
        for day in live.rows:
            got = by_day.get(day.period)
            expected = day.figures()
            if got is None:
                assert all(v == 0 for k, v in expected.items() if k != "payment_fees"), day
                continue
            assert {k: got[k] for k in ("stakes", "wins", "ggr")} == {
                "stakes": expected["bets"],
                "wins": expected["wins"],
                "ggr": expected["ggr"],
            }, day.period
            for figure in ("bonus_cost", "deposits", "withdrawals"):
                assert got[figure] == expected[figure], (day.period, figure)
    eur = {r["day"]: r for r in rows if r["currency"] == "EUR"}
    assert (eur[D1]["ggr"], eur[D2]["ggr"], eur[D3]["stakes"]) == (11_00, 17_00, 1_00)

    # GGR and RTP per game = the rollups' games (the analytics API).
    rollups.rollup_range(D1, D3)
    api = rollups.games(D1, D2, currency="EUR")["games"]
    games = [
        g
        for g in clickhouse.run_query(ch, "games", date_from=D1, date_to=D2)
        if g["currency"] == "EUR"
    ]
    assert [
        (
            g["game_id"],
            format_minor(g["stakes"], "EUR"),
            format_minor(g["wins"], "EUR"),
            format_minor(g["ggr"], "EUR"),
            None if g["rtp_bp"] is None else f"{g['rtp_bp'] / 100:.2f}",
            g["bets_count"],
        )
        for g in games
    ] == [(g["game_id"], g["stakes"], g["wins"], g["ggr"], g["rtp"], g["bets_count"]) for g in api]
    assert [g["rtp"] for g in api] == ["23.33", "28.57"]

    # GGR per day and game = the daily game rollups.
    per_day = {
        (r["day"], r["currency"], r["game_id"]): (r["stakes"], r["wins"], r["ggr"])
        for r in clickhouse.run_query(ch, "ggr_per_day_game", **RANGE)
    }
    rolled = {
        (g.day, g.currency, g.game_id): (g.stakes, g.wins, g.ggr)
        for g in db.session.scalars(sa.select(DailyGameRollup))
        if D1 <= g.day <= D3
    }
    assert per_day == rolled

    # Active players per day = the players report.
    active = {r["day"]: r["active"] for r in clickhouse.run_query(ch, "active_players", **RANGE)}
    report = financial.players(D1, D3)
    assert {d.day: d.active for d in report.days if d.active} == active
    assert active[D1] == 2

    # Deposits, depositors and payment fees per day = the daily rollups.
    deposits = {
        (r["day"], r["currency"]): (r["deposits"], r["depositors"], r["payment_fees"])
        for r in clickhouse.run_query(ch, "deposits", **RANGE)
    }
    daily = {
        (r.day, r.currency): (r.deposits, r.depositors, r.payment_fees)
        for r in db.session.scalars(sa.select(DailyRollup))
        if (r.deposits, r.depositors, r.payment_fees) != (0, 0, 0)
    }
    assert deposits == daily
    assert deposits[(D2, "EUR")] == (0, 0, 1_30)  # the withdrawal's fee


def test_todays_play_gives_the_same_figures_in_either_database(client, factory, ch):
    """Both modes (PostgreSQL and the embedded SQLite): the streamed ledger and the live
    financial report agree on today's money."""
    table = open_table(client, factory, cash=60_00, bonus=5_00)
    table.bet("t1", "4.00", round_id="t")
    table.win("t2", "9.50", round_id="t")
    table.bet("t3", "2.00", round_id="u")
    table.refund("t4", "t3", round_id="u")
    export(ch)
    today = datetime.now(UTC).date()
    live = financial.financial(today, today, currency="EUR").totals
    (row,) = [
        r
        for r in clickhouse.run_query(ch, "financial_per_day", date_from=today, date_to=today)
        if r["currency"] == "EUR"
    ]
    assert (row["stakes"], row["wins"], row["ggr"]) == (live.bets, live.wins, live.ggr)
    assert (row["deposits"], row["bonus_cost"]) == (live.deposits, live.bonus_cost)
    assert (row["stakes"], row["wins"]) == (4_00, 9_50)
    (game,) = [
        g
        for g in clickhouse.run_query(ch, "games", date_from=today, date_to=today)
        if g["currency"] == "EUR"
    ]
    assert game["game_id"] is not None
    assert game["rtp_bp"] == 23750  # 9.50 / 4.00 = 237.50 %


# --- exactly once -------------------------------------------------------------------------------


def _ledger_counts(ch) -> tuple[int, int, int]:
    return (
        scalar(ch, "SELECT count() FROM {db}.ledger_transactions FINAL"),
        scalar(ch, "SELECT uniqExact(id) FROM {db}.ledger_transactions"),
        scalar(ch, "SELECT sum(moved) FROM {db}.ledger_transactions FINAL"),
    )


def _pg_ledger() -> tuple[int, int, int]:
    t = LedgerTransaction
    n = pg_count(t)
    moved = db.session.scalar(sa.select(sa.func.sum(t.cash_delta + t.bonus_delta))) or 0
    return n, n, int(moved)


@pytest.mark.postgres
def test_sending_everything_again_counts_nothing_twice(both, ch):  # noqa: F811
    export(ch)
    first = clickhouse.run_query(ch, "financial_per_day", **RANGE)
    # A second run finds nothing new; a rewind to the start sends every row again.
    assert set(export(ch).values()) == {0}
    for name in sink.BY_NAME:
        sink.rewind(name, None)
    again = export(ch)
    assert again["ledger"] == pg_count(LedgerTransaction)
    assert clickhouse.run_query(ch, "financial_per_day", **RANGE) == first
    assert _ledger_counts(ch) == _pg_ledger()
    ch.command(f"OPTIMIZE TABLE `{ch.database}`.ledger_transactions FINAL")
    assert scalar(ch, "SELECT count() FROM {db}.ledger_transactions") == pg_count(LedgerTransaction)


class Killed(BaseException):
    """The process dying (not an error any handler would catch)."""


class CrashAfterInsert:
    """The process dies right after ClickHouse acknowledged an insert into ``table``, before
    PostgreSQL committed the mark (the worst moment)."""

    def __init__(self, inner: ChdbWriter, table: str) -> None:
        self.inner, self.table, self.database = inner, table, inner.database

    def command(self, sql: str) -> None:
        self.inner.command(sql)
        if sql.startswith(f"INSERT INTO `{self.database}`.`{self.table}`"):
            raise Killed("killed after the insert")

    def query(self, sql: str):
        return self.inner.query(sql)

    def close(self) -> None:
        pass


def test_a_crash_between_insert_and_mark_sends_the_batch_again_once(client, factory, ch):
    table = open_table(client, factory, cash=50_00)
    table.bet("c1", "2.00", round_id="k1")
    table.win("c2", "5.00", round_id="k1")
    fund(factory.player().id, cash=10_00)
    with pytest.raises(Killed):
        export(CrashAfterInsert(ch, "ledger_transactions"), streams=["ledger"], batch=2)
    assert marks()["ledger"] == (None, 0)  # the mark did not move
    assert scalar(ch, "SELECT count() FROM {db}.ledger_transactions") == 2  # but CH has it

    done = export(ch, batch=2)
    assert done["ledger"] == pg_count(LedgerTransaction)
    # The re-sent first batch carried the same insert_deduplication_token: ClickHouse
    # dropped it, so even the raw table (no FINAL) holds each row once.
    assert scalar(ch, "SELECT count() FROM {db}.ledger_transactions") == pg_count(LedgerTransaction)
    assert _ledger_counts(ch) == _pg_ledger()
    state = db.session.get(SinkState, "ledger")
    assert state.exported_rows == pg_count(LedgerTransaction)
    assert sink.status(verify=True, lag=True)["streams"][0]["missed"] == 0


def test_a_changed_round_and_payment_replace_their_older_version(client, factory, ch):
    table = open_table(client, factory, cash=50_00)
    table.bet("v1", "3.00", round_id="v")
    export(ch)
    table.win("v2", "4.00", round_id="v")
    assert export(ch)["rounds"] == 1  # the round changed: exported again
    rows = ch.query(f"SELECT id, total_bet, total_win FROM `{ch.database}`.game_rounds FINAL")
    assert [(r["total_bet"], r["total_win"]) for r in rows] == [(3_00, 4_00)]
    assert scalar(ch, "SELECT count() FROM {db}.game_rounds") == 2  # two versions stored
    events = ch.query(
        f"SELECT event, count() AS n FROM `{ch.database}`.player_events FINAL GROUP BY event"
    )
    assert {e["event"]: e["n"] for e in events}["registration"] >= 1


# --- outages and lag ----------------------------------------------------------------------------


def test_a_clickhouse_outage_fails_the_job_and_loses_nothing(app, client, factory, ch, monkeypatch):
    table = open_table(client, factory, cash=20_00)
    table.bet("o1", "1.00", round_id="o")
    monkeypatch.setitem(app.config, "CLICKHOUSE_URL", "http://127.0.0.1:9/jackpotx")  # closed
    monkeypatch.setitem(app.config, "CLICKHOUSE_SINK_SETTLE_SECONDS", 0)
    with pytest.raises(sink.SinkFailed):
        report_jobs.export_to_clickhouse()
    status = sink.status(lag=True)
    assert status["enabled"]
    assert status["target"] == "http://127.0.0.1:9/jackpotx"
    ledger = next(s for s in status["streams"] if s["stream"] == "ledger")
    assert ledger["last_error"]
    assert ledger["mark_ts"] is None
    assert ledger["behind"] == pg_count(LedgerTransaction)
    assert ledger["lag_seconds"] > 0
    monkeypatch.setitem(app.config, "CLICKHOUSE_URL", "")

    # ClickHouse up but refusing (its database gone): the run fails, no mark moves.
    ch.command(f"DROP DATABASE `{ch.database}`")
    with pytest.raises(sink.SinkFailed, match="ledger"):
        export(ch)
    assert set(marks().values()) == {(None, 0)}
    # Back: everything arrives, once.
    clickhouse.init_schema(ch)
    assert export(ch)["ledger"] == pg_count(LedgerTransaction)
    assert _ledger_counts(ch) == _pg_ledger()
    after = {s["stream"]: s for s in sink.status(lag=True)["streams"]}
    assert after["ledger"]["behind"] == 0
    assert after["ledger"]["last_error"] is None
    assert after["ledger"]["lag_seconds"] == 0.0


def _login(user_id: int, ago: timedelta) -> None:
    with atomic():
        db.session.add(
            LoginEvent(
                login="player@example.org",
                success=True,
                user_id=user_id,
                created_at=datetime.now(UTC) - ago,
            )
        )


def test_a_row_committed_behind_the_mark_is_reported_and_recovered(client, factory, ch):
    player = factory.player()
    _login(player.id, timedelta(minutes=5))
    export(ch)
    assert marks()["logins"][0] is not None
    # A login whose transaction stayed open past the settle window: its timestamp is older
    # than the mark by the time it commits.
    _login(player.id, timedelta(hours=1))
    logins = next(
        s for s in sink.status(verify=True, lag=True)["streams"] if s["stream"] == "logins"
    )
    assert logins["missed"] == 1
    assert logins["behind"] == 0
    sink.rewind("logins", None)
    export(ch, streams=["logins"])
    logins = next(
        s for s in sink.status(verify=True, lag=True)["streams"] if s["stream"] == "logins"
    )
    assert logins["missed"] == 0
    assert scalar(
        ch, "SELECT count() FROM {db}.player_events FINAL WHERE source = 'login_history'"
    ) == pg_count(LoginEvent)


def test_the_settle_window_holds_back_fresh_rows(client, factory, ch):
    fund(factory.player().id, cash=5_00)
    assert export(ch, settle_seconds=3600)["ledger"] == 0
    ledger = next(s for s in sink.status(lag=True)["streams"] if s["stream"] == "ledger")
    assert ledger["behind"] == pg_count(LedgerTransaction) > 0
    assert export(ch)["ledger"] == pg_count(LedgerTransaction)


def test_absurd_batch_settings_are_refused(ch):
    for bad in ({"batch": 0}, {"max_batches": -1}, {"settle_seconds": -5}):
        with pytest.raises(ValueError, match="batch and max_batches are >= 1"):
            sink.run(ch, **bad)


# --- operators ----------------------------------------------------------------------------------


def test_the_cli_inits_runs_and_reports(app, runner, chdb_dir, client, factory, monkeypatch):
    database = f"jx_cli_{secrets.token_hex(3)}"
    fund(factory.player().id, cash=7_00)
    off = runner.invoke(args=["jackpotx", "analytics", "sink-run"])
    assert off.exit_code != 0
    assert "CLICKHOUSE_URL is not set" in off.output
    monkeypatch.setitem(app.config, "CLICKHOUSE_URL", f"chdb://{chdb_dir}?database={database}")
    monkeypatch.setitem(app.config, "CLICKHOUSE_SINK_SETTLE_SECONDS", 0)
    try:
        init = runner.invoke(args=["jackpotx", "analytics", "clickhouse-init"])
        assert init.exit_code == 0, init.output
        assert f"ClickHouse database {database}: ledger_transactions" in init.output
        before = runner.invoke(args=["jackpotx", "analytics", "sink-status"])
        assert before.exit_code == 0, before.output
        assert f"behind={pg_count(LedgerTransaction)}" in before.output
        ran = runner.invoke(args=["jackpotx", "analytics", "sink-run", "--stream", "ledger"])
        assert ran.exit_code == 0, ran.output
        assert f"ledger: {pg_count(LedgerTransaction)} row(s) exported" in ran.output
        after = runner.invoke(args=["jackpotx", "analytics", "sink-status", "--verify"])
        assert "ledger          behind=0 lag=0.0s" in after.output
        assert "missed=0" in after.output
        rewound = runner.invoke(
            args=[
                "jackpotx",
                "analytics",
                "sink-rewind",
                "--stream",
                "ledger",
                "--to",
                "2026-01-01",
            ]
        )
        assert "mark moved to 2026-01-01T00:00:00+00:00" in rewound.output
    finally:
        ChdbWriter(chdb_dir, database).command(f"DROP DATABASE IF EXISTS `{database}`")


def test_the_jobs_api_shows_the_sink_lag(app, client, factory, token_for, monkeypatch):
    if not app.config["REDIS_URL"]:
        pytest.skip("the jobs API needs a Redis server")
    fund(factory.player().id, cash=3_00)
    headers = token_for(factory.staff("admin"))
    off = client.get("/api/admin/jobs", headers=headers).get_json()["data"]["analytics_sink"]
    assert off["enabled"] is False
    assert {s["lag_seconds"] for s in off["streams"]} == {None}
    monkeypatch.setitem(app.config, "CLICKHOUSE_URL", "https://jx:pw@ch.example:8443/jackpotx")
    response = client.get("/api/admin/jobs", headers=headers)
    assert response.status_code == 200, response.json
    sink_data = response.get_json()["data"]["analytics_sink"]
    assert sink_data["target"] == "https://jx:***@ch.example:8443/jackpotx"
    ledger = next(s for s in sink_data["streams"] if s["stream"] == "ledger")
    assert ledger["behind"] == pg_count(LedgerTransaction)
    assert ledger["behind_capped"] is False
    assert ledger["lag_seconds"] > 0
    assert ledger["oldest_unexported_at"] is not None


def test_the_documented_queries_are_the_tested_ones():
    text = DOCS.read_text()
    assert "## ClickHouse event sink" in text
    for name, sql in clickhouse_schema.QUERIES.items():
        assert sql.strip() in text, f"docs/analytics.md does not show the {name} query"


def test_a_clickhouse_failure_is_one_exception_type(ch):
    with pytest.raises(ClickHouseUnavailable):
        ch.command("SELECT * FROM no_such_database.no_such_table")


@pytest.mark.postgres
def test_a_run_skips_a_stream_another_run_is_exporting(
    requires_postgres, committed_db, factory, ch
):
    fund(factory.player().id, cash=5_00)
    sink.run(ch, streams=["ledger"], settle_seconds=3600)  # creates the committed mark row
    with db.engine.connect() as other:
        # Another run's transaction holds the ledger's mark (mid-batch).
        other.execute(
            sa.text("SELECT 1 FROM analytics_sink_state WHERE stream = 'ledger' FOR UPDATE")
        )
        assert export(ch, streams=["ledger", "logins"])["ledger"] == 0
        other.rollback()
    assert scalar(ch, "SELECT count() FROM {db}.ledger_transactions") == 0
    assert export(ch, streams=["ledger"])["ledger"] == pg_count(LedgerTransaction) > 0
