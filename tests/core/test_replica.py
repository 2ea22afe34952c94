"""The read replica (``DATABASE_REPLICA_URL``), proven against a real PostgreSQL streaming
standby that the module starts itself (``tests/standby.py``).

How the tests know where a read went: the standby's WAL replay is paused
(``pg_wal_replay_pause``), a figure is changed on the primary, and the report still answers
the old figure: only the replica still holds it. Once replay resumes the new figure appears.
A lagging or stopped replica sends the same report to the primary, with a log line.

The routing rules themselves (what may go to the replica at all) are tested without a
standby, on both databases.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import date

import pytest
import sqlalchemy as sa

from app import create_app
from app.core import replica
from app.core.db import atomic
from app.core.extensions import db
from app.core.routing import replica_engine, routed_to_replica
from app.reports import rollups
from app.reports.models import DailyRollup, RolledDay
from tests.conftest import IN_CI, IsolatedClient
from tests.standby import Standby, StandbyUnavailable, free_port, wait_for

DAY = date(2026, 3, 14)
QUERY = f"date_from={DAY}&date_to={DAY}&currency=EUR"


# --- the routing rules (no standby needed; SQLite too) ----------------------------------------


def test_only_a_plain_select_may_go_to_the_replica():
    t = DailyRollup.__table__
    assert routed_to_replica(sa.select(DailyRollup))
    assert routed_to_replica(sa.select(sa.func.count()).select_from(t))
    assert not routed_to_replica(sa.select(DailyRollup).with_for_update())
    assert not routed_to_replica(sa.insert(t).values(day=DAY, currency="EUR"))
    assert not routed_to_replica(sa.update(t).values(stakes=1))
    assert not routed_to_replica(sa.delete(t))
    assert not routed_to_replica(sa.text("SELECT 1"))
    assert not routed_to_replica(None)  # a flush names a mapper, no statement


def test_without_a_replica_url_a_replica_block_reads_the_primary(app):
    assert not app.config["DATABASE_REPLICA_URL"]
    assert "SQLALCHEMY_BINDS" not in app.config or "replica" not in app.config["SQLALCHEMY_BINDS"]
    with replica.reads() as on_replica:
        assert on_replica is False
        assert replica_engine.get() is None
    assert replica.status() == {"configured": False}


def test_a_replica_url_adds_a_bind_with_a_short_connect_timeout():
    from app.core.config import load_config

    cfg = load_config(
        {},
        ENV="testing",
        SQLALCHEMY_DATABASE_URI="postgresql://u@db/jx",
        DATABASE_REPLICA_URL="postgres://u@standby/jx",
    )
    bind = cfg["SQLALCHEMY_BINDS"]["replica"]
    assert bind["url"] == "postgresql+psycopg2://u@standby/jx"
    assert bind["connect_args"] == {"connect_timeout": 2, "application_name": "jackpotx-replica"}


def test_production_takes_only_a_postgresql_replica():
    from app.core.config import ConfigError, load_config
    from tests.prodenv import PRODUCTION_ENV

    production = dict(PRODUCTION_ENV)
    with pytest.raises(ConfigError, match="DATABASE_REPLICA_URL must be a PostgreSQL URL"):
        load_config({**production, "DATABASE_REPLICA_URL": "sqlite:///copy.sqlite3"})
    cfg = load_config({**production, "DATABASE_REPLICA_URL": "postgresql://u@standby/jackpotx"})
    bind = cfg["SQLALCHEMY_BINDS"]["replica"]
    # The production pool settings apply to the replica's pool too.
    assert (bind["pool_size"], bind["max_overflow"], bind["pool_timeout"]) == (15, 0, 3)
    assert "replica" not in load_config(production).get("SQLALCHEMY_BINDS", {})


# --- a real standby ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standby(app, database_url) -> Iterator[Standby]:
    url = sa.make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        pytest.skip("needs PostgreSQL: the replica is a streaming standby of it")
    server = Standby(url)
    try:
        server.start()
    except StandbyUnavailable as exc:
        server.remove()
        if IN_CI:
            pytest.fail(f"CI must run the read-replica tests: {exc}")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def replica_app(app, standby, tmp_path_factory):
    """The app as deployed with a replica: same primary, same Redis, the standby as replica.
    ``REPLICA_CHECK_SECONDS=0``: every block checks the replica (no cached verdict)."""
    instance = tmp_path_factory.mktemp("replica-instance")
    application = create_app(
        {
            "ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "DATABASE_REPLICA_URL": standby.url().render_as_string(hide_password=False),
            "REPLICA_CHECK_SECONDS": 0,
            "REPLICA_MAX_LAG_SECONDS": 3600,
            "REDIS_URL": app.config["REDIS_URL"],
            "RQ_SYNC": True,
            "INSTANCE_DIR": str(instance),
            "EXPORT_DIR": str(instance / "exports"),
            "SERVER_NAME": "localhost",
        }
    )
    application.test_client_class = IsolatedClient
    yield application
    with application.app_context():
        for engine in db.engines.values():
            engine.dispose()


def _set_stakes(application, stakes: int) -> None:
    """Write the day's rollup on the primary (committed), marked rolled: the readers take a
    rolled day from the rollup tables."""
    with application.app_context():
        with atomic():
            db.session.merge(DailyRollup(day=DAY, currency="EUR", stakes=stakes, ggr=stakes))
            db.session.merge(RolledDay(day=DAY))
        db.session.remove()


def _on_standby(standby: Standby) -> int | None:
    return standby.scalar(
        "SELECT stakes FROM report_daily WHERE day = :d AND currency = 'EUR'", d=DAY
    )


def _reported_stakes(client, headers) -> str:
    answer = client.get(f"/api/admin/analytics/revenue?{QUERY}", headers=headers)
    assert answer.status_code == 200, answer.json
    return answer.json["data"]["totals"]["stakes"]


@pytest.fixture
def manager(replica_app, standby, committed_db, factory, token_for):
    replica.forget()
    with replica_app.app_context():
        headers = token_for(factory.staff("manager"))
        db.session.remove()
    standby.catch_up()  # a test starts from a standby that replayed everything before it
    return headers


@pytest.mark.postgres
def test_reports_read_the_streaming_replica_and_never_inside_a_transaction(
    replica_app, standby, manager
):
    client = replica_app.test_client()
    _set_stakes(replica_app, 10_00)
    # Streaming works: the primary's committed row reaches the standby.
    wait_for(lambda: _on_standby(standby) == 10_00, "the row to stream to the standby")
    assert _reported_stakes(client, manager) == "10.00"

    standby.pause_replay()
    try:
        _set_stakes(replica_app, 25_00)
        with replica_app.app_context():
            assert db.session.get_one(DailyRollup, (DAY, "EUR")).stakes == 25_00  # the primary
            db.session.remove()
        # The report answers what only the paused replica still holds.
        assert _reported_stakes(client, manager) == "10.00"
        assert _on_standby(standby) == 10_00
        with replica_app.app_context():
            with replica.reads() as on_replica:
                assert on_replica is True
                assert rollups.revenue(DAY, DAY, currency="EUR")["totals"]["stakes"] == "10.00"
                # A transaction inside the block reads (and locks, and writes) the primary.
                with atomic():
                    assert db.session.scalar(sa.select(DailyRollup.stakes)) == 25_00
            db.session.remove()
            with atomic():  # the money path's shape: a report called inside a transaction
                assert rollups.revenue(DAY, DAY, currency="EUR")["totals"]["stakes"] == "25.00"
            db.session.remove()
    finally:
        standby.resume_replay()
    wait_for(lambda: _reported_stakes(client, manager) == "25.00", "the replica to catch up")


@pytest.mark.postgres
def test_a_write_inside_a_replica_block_lands_on_the_primary(replica_app, standby, manager):
    with replica_app.app_context():
        with replica.reads() as on_replica:
            assert on_replica is True
            db.session.add(DailyRollup(day=DAY, currency="XTS", stakes=7))
            db.session.commit()  # a flush names a mapper: the primary
            db.session.execute(
                sa.update(DailyRollup).where(DailyRollup.currency == "XTS").values(stakes=8)
            )
            db.session.commit()
        assert db.session.get_one(DailyRollup, (DAY, "XTS")).stakes == 8
        db.session.remove()
    wait_for(
        lambda: standby.scalar("SELECT stakes FROM report_daily WHERE currency = 'XTS'") == 8,
        "the write to stream to the standby",
    )


@pytest.mark.postgres
def test_a_lagging_replica_sends_reports_to_the_primary_with_a_log_line(
    replica_app, standby, manager, caplog
):
    client = replica_app.test_client()
    _set_stakes(replica_app, 1_00)
    wait_for(lambda: _on_standby(standby) == 1_00, "the row to stream to the standby")
    replica_app.config["REPLICA_MAX_LAG_SECONDS"] = 0
    standby.pause_replay()
    try:
        _set_stakes(replica_app, 2_00)
        # The standby has received the change but not replayed it: it is behind.
        wait_for(
            lambda: standby.scalar(
                "SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()", "postgres"
            ),
            "the standby to receive WAL it does not replay",
        )
        with caplog.at_level(logging.WARNING, logger="app.core.replica"):
            assert _reported_stakes(client, manager) == "2.00"  # the primary's figure
        assert any("read replica lagging" in r.getMessage() for r in caplog.records)
        with replica_app.app_context():
            status = replica.status()
        assert status["usable"] is False
        assert status["reason"] == "lagging"
        assert status["lag_seconds"] > 0
    finally:
        standby.resume_replay()
        replica_app.config["REPLICA_MAX_LAG_SECONDS"] = 3600
    wait_for(lambda: _on_standby(standby) == 2_00, "the standby to catch up")
    with replica_app.app_context():
        assert replica.status()["usable"] is True


@pytest.mark.postgres
def test_a_stopped_replica_sends_reports_to_the_primary_and_is_used_again_when_back(
    replica_app, standby, manager, caplog
):
    client = replica_app.test_client()
    _set_stakes(replica_app, 3_00)
    wait_for(lambda: _on_standby(standby) == 3_00, "the row to stream to the standby")
    standby.halt()
    try:
        _set_stakes(replica_app, 4_00)
        with caplog.at_level(logging.WARNING, logger="app.core.replica"):
            assert _reported_stakes(client, manager) == "4.00"
            # The console's report pages too: the primary answers, not a 500.
            with replica_app.app_context():
                assert replica.status()["reason"] == "down"
        assert any("read replica down" in r.getMessage() for r in caplog.records)
    finally:
        standby.resume()
    wait_for(lambda: _on_standby(standby) == 4_00, "the restarted standby to catch up")
    with replica_app.app_context():
        status = replica.status()
    assert status["usable"] is True
    assert status["reason"] == "ok"


@pytest.mark.postgres
def test_a_replica_that_never_answers_costs_a_report_nothing_but_a_log_line(
    app, standby, committed_db, factory, token_for, tmp_path, caplog
):
    closed = free_port()  # nothing listens there: connection refused, at once
    other = create_app(
        {
            "ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "DATABASE_REPLICA_URL": f"postgresql://postgres@127.0.0.1:{closed}/nowhere",
            "REDIS_URL": app.config["REDIS_URL"],
            "RQ_SYNC": True,
            "INSTANCE_DIR": str(tmp_path),
            "SERVER_NAME": "localhost",
        }
    )
    other.test_client_class = IsolatedClient
    replica.forget()
    with other.app_context():
        headers = token_for(factory.staff("manager"))
        db.session.remove()
    _set_stakes(other, 5_00)
    with caplog.at_level(logging.WARNING, logger="app.core.replica"):
        assert _reported_stakes(other.test_client(), headers) == "5.00"
    assert any("read replica down" in r.getMessage() for r in caplog.records)
    with other.app_context():
        for engine in db.engines.values():
            engine.dispose()


@pytest.mark.postgres
def test_a_queued_export_reads_the_replica(replica_app, standby, manager, factory):
    client = replica_app.test_client()
    tag = "rx" + os.urandom(4).hex()
    with replica_app.app_context():
        factory.player(username=f"{tag}_old")
        db.session.remove()
    wait_for(
        lambda: standby.scalar("SELECT count(*) FROM users WHERE username = :u", u=f"{tag}_old"),
        "the player to stream to the standby",
    )

    def exported() -> str:
        asked = client.post(
            "/api/admin/exports", json={"kind": "players", "q": tag}, headers=manager
        )
        assert asked.status_code == 202, asked.json
        answer = client.get(
            f"/api/admin/exports/{asked.json['data']['id']}/download", headers=manager
        )
        try:
            assert answer.status_code == 200
            return answer.get_data(as_text=True)
        finally:
            answer.close()

    standby.pause_replay()
    try:
        with replica_app.app_context():
            factory.player(username=f"{tag}_new")
            db.session.remove()
        text = exported()
        assert f"{tag}_old" in text
        assert f"{tag}_new" not in text  # on the primary only: the export read the replica
    finally:
        standby.resume_replay()
    wait_for(lambda: f"{tag}_new" in exported(), "the export to see the replayed player")


@pytest.mark.postgres
def test_the_replica_connection_is_the_standbys_and_goes_back_when_the_block_ends(
    replica_app, standby, manager
):
    seen = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'jackpotx-replica'"
    with replica_app.app_context():
        engine = replica.engine()
        assert engine is not None
        with replica.reads() as on_replica:
            assert on_replica is True
            rollups.revenue(DAY, DAY, currency="EUR")
            assert engine.pool.checkedout() == 1  # held by the session inside the block
            db.session.scalar(sa.select(DailyRollup.stakes).limit(1))
            assert standby.scalar(seen) >= 1  # the session's reads: a standby backend
            with db.engines[None].connect() as primary:
                assert primary.execute(sa.text(seen)).scalar() == 0
        assert engine.pool.checkedout() == 0  # released when the block ended
        db.session.remove()
