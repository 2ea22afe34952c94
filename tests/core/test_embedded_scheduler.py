"""The embedded default runs the periodic jobs itself: an app with no Redis (SQLite, fakeredis,
in-process jobs) whose in-process scheduler is driven tick by tick at chosen times (no
sleeping): a must-drop-by-time jackpot pays at its deadline, runs are recorded for the jobs
page, one scheduler per process, and the command line says where the jobs run."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app import create_app
from app.core import bus, jobs_admin, periodic
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import OutboxMessage
from app.identity.models import ADMIN, PLAYER
from app.prizes import jackpots
from app.prizes.models import JackpotContribution, JackpotWin
from app.wallet.models import Wallet

JACKPOTS = "app.prizes.jobs.jackpots_periodic"


@pytest.fixture
def embedded(committed_db, tmp_path):
    """A second app exactly as ``make run`` configures it: SQLite file, no REDIS_URL."""
    app = create_app(
        {
            "ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'embedded.sqlite3'}",
            "REDIS_URL": "",
            "INSTANCE_DIR": str(tmp_path),
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "MAIL_DIR": str(tmp_path / "mail"),
        }
    )
    assert periodic.jobs_in_process(app)
    app.extensions["redis"].flushdb()  # the process's fakeredis: no heartbeat from another test
    with app.app_context():
        db.create_all()
        from app.identity.access import ensure_roles
        from app.identity.users import create_user

        with atomic():
            ensure_roles()
        with atomic():
            create_user(
                username="boss", email="boss@x.test", password="Passw0rd-Long-1!", role_id=ADMIN
            )
            create_user(
                username="lucky", email="lucky@x.test", password="Passw0rd-Long-1!", role_id=PLAYER
            )
        db.session.remove()
    yield app
    app.extensions["redis"].flushdb()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _user_id(name: str) -> int:
    from app.identity.models import User

    return db.session.scalar(sa.select(User.id).where(User.username == name))


def test_a_must_drop_by_time_jackpot_pays_at_its_deadline_with_no_redis(embedded, monkeypatch):
    with embedded.app_context():
        from app.identity.models import User

        admin = db.session.scalar(sa.select(User).where(User.username == "boss"))
        pool = jackpots.create_pool(
            {
                "name": "Hourly",
                "currency": "EUR",
                "seed_amount": "10.00",
                "contribution_percent": "10",
                "must_drop_within": "60",
            },
            actor=admin,
        )
        pool_id, deadline = pool.id, pool.drop_deadline
        player = _user_id("lucky")
        with atomic():
            # A bet's contribution, as the money path appends it (the bet itself is not needed).
            db.session.add(
                JackpotContribution(
                    pool_id=pool_id,
                    cycle=pool.cycle,
                    user_id=player,
                    transaction_id=1,
                    bet_amount=5_00,
                    amount=50,
                    created_at=utcnow(),
                )
            )
        db.session.remove()

    connection = embedded.extensions["redis"]
    scheduler = periodic.InProcessScheduler(
        embedded, connection, periodic.configured_jobs(f"{JACKPOTS}:10:default")
    )
    t0 = 1_000_000 * 10 + periodic.PeriodicJob(JACKPOTS, 10, "default").offset + 1

    monkeypatch.setattr(jackpots, "utcnow", lambda: deadline - timedelta(seconds=1))
    assert scheduler.tick(t0) == [JACKPOTS]  # first tick: every job runs once at once
    assert scheduler.tick(t0 + 1) == []  # same slot: not again
    with embedded.app_context():
        assert db.session.scalar(sa.select(JackpotWin.id)) is None

    monkeypatch.setattr(jackpots, "utcnow", lambda: deadline)
    assert scheduler.tick(t0 + 10) == [JACKPOTS]  # next slot, at the deadline
    with embedded.app_context():
        win = db.session.scalar(sa.select(JackpotWin).where(JackpotWin.pool_id == pool_id))
        assert (win.trigger, win.status, win.user_id, win.amount) == (
            "drop_time",
            "paid",
            player,
            10_50,
        )
        cash = db.session.scalar(sa.select(Wallet.balance).where(Wallet.user_id == player))
        assert cash == 10_50
        # The jobs page of this process tells the truth: in-process, alive, last run recorded.
        data = jobs_admin.schedule()
        assert data["scheduler"]["alive"]
        assert data["scheduler"]["mode"] == "in-process"
        assert "this server process runs each periodic job" in data["scheduler"]["where"]
        row = next(r for r in data["periodic"] if r["func"] == JACKPOTS)
        assert row["last_status"] == "successful"
        assert row["next_run_at"]
        db.session.remove()


def test_a_failing_job_is_recorded_and_the_schedule_goes_on(embedded):
    connection = embedded.extensions["redis"]
    jobs = periodic.configured_jobs("tests.jobs_helpers.boom:60:default")
    scheduler = periodic.InProcessScheduler(embedded, connection, jobs)
    assert scheduler.tick(6_000_000.0) == ["tests.jobs_helpers.boom"]
    record = periodic.last_runs(connection)["tests.jobs_helpers.boom"]
    assert record["status"] == "failed"
    assert "periodic job went wrong" in record["error"]
    assert scheduler.tick(6_000_060.0) == ["tests.jobs_helpers.boom"]


def test_one_in_process_scheduler_per_process_and_only_without_redis(app, embedded, monkeypatch):
    monkeypatch.setattr(periodic, "_in_process", None)
    with monkeypatch.context() as m:
        m.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:6379/0")
        assert periodic.start_in_process(app) is None  # worker.py's job, not ours
    with monkeypatch.context() as m:
        m.setitem(embedded.config, "EMBEDDED_SCHEDULER", False)
        assert periodic.start_in_process(embedded) is None
    stopped = threading.Event()
    stopped.set()  # the thread ends at once: nothing ticks behind the test's back
    first = periodic.start_in_process(embedded, stopped)
    assert isinstance(first, periodic.InProcessScheduler)
    assert periodic.start_in_process(embedded, stopped) is first


def test_the_command_line_says_where_embedded_jobs_run(embedded):
    with embedded.app_context():  # the session's app context is current otherwise
        result = embedded.test_cli_runner().invoke(args=["jackpotx", "jobs", "schedule"])
    assert result.exit_code == 0, result.output
    assert "embedded mode (no REDIS_URL)" in result.output
    assert "make run" in result.output
    assert f"{JACKPOTS} every=10s" in result.output


def test_an_embedded_broadcast_reaches_the_server_through_its_relay(embedded):
    seen: list[bus.Event] = []
    unsubscribe = bus.subscribe(seen.append)
    try:
        with embedded.app_context():
            result = embedded.test_cli_runner().invoke(
                args=["jackpotx", "realtime", "broadcast", "--event", "notice", "--data", '{"a":1}']
            )
            db.session.remove()
        assert result.exit_code == 0, result.output
        assert "relays it to its connected clients" in result.output
        assert [e for e in seen if e.name == "notice"] == []  # the command emits nothing itself
        with embedded.app_context():
            row = db.session.scalar(sa.select(OutboxMessage).where(OutboxMessage.name == "notice"))
            assert row.delivered_at is None
            db.session.remove()
        # The server's in-process scheduler runs the relay, which emits to its sockets.
        relay = periodic.configured_jobs("app.core.jobs.relay_outbox:10:default")
        scheduler = periodic.InProcessScheduler(embedded, embedded.extensions["redis"], relay)
        assert scheduler.tick(7_000_000.0) == ["app.core.jobs.relay_outbox"]
        assert [(e.name, e.data, e.room) for e in seen if e.name == "notice"] == [
            ("notice", {"a": 1}, "global")
        ]
    finally:
        unsubscribe()
