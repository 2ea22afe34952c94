"""Console jobs page: failed jobs with their error and a re-run button, the periodic schedule
with last/next run, Admin only (``jobs.manage``), Redis down → a 503 page, not a 500."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa
from rq import Queue, SimpleWorker

from app.core import periodic
from app.core.extensions import db
from app.core.models import AuditLog
from app.core.schedule import PERIODIC_JOBS, periodic_job_id
from app.wallet.models import LedgerTransaction
from tests.moneykit import fund

HX = {"HX-Request": "true"}


@pytest.fixture
def real_redis(app):
    if not app.config["REDIS_URL"]:
        pytest.skip("needs a Redis server")
    return app.extensions["redis"]


@pytest.fixture
def failed_job(real_redis):
    queue = Queue("payouts", connection=real_redis)
    job = queue.enqueue("tests.jobs_helpers.explode", 77)
    SimpleWorker([queue], connection=real_redis).work(burst=True)
    job.refresh()
    assert job.is_failed
    return job


@pytest.mark.parametrize("role", ["manager", "support", "agent"])
def test_only_staff_with_jobs_manage_see_jobs(signed_in, role, real_redis, failed_job):
    client, _ = signed_in(role)
    assert client.get("/admin/jobs").status_code == 403
    assert client.get(f"/admin/jobs/{failed_job.id}").status_code == 403
    assert client.post(f"/admin/jobs/{failed_job.id}/requeue").status_code == 403
    assert failed_job.id in Queue("payouts", connection=real_redis).failed_job_registry
    assert ">Jobs</a>" not in client.get("/admin/").get_data(as_text=True)


def test_failed_jobs_show_their_error_and_are_rerun_once(signed_in, real_redis, failed_job):
    client, admin = signed_in("admin")
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert ">Jobs</a>" in html
    row = html[html.index(f'id="job-row-{failed_job.id}"') :]
    row = row[: row.index("</tr>")]
    assert "tests.jobs_helpers.explode" in row
    assert "ValueError: payout gateway said no for order 77" in row
    assert 'data-action="requeue"' in row
    detail = client.get(f"/admin/jobs/{failed_job.id}").get_data(as_text=True)
    assert "Traceback" in detail

    response = client.post(f"/admin/jobs/{failed_job.id}/requeue", headers=HX)
    assert response.status_code == 200
    swapped = response.get_data(as_text=True)
    assert f'id="job-row-{failed_job.id}"' in swapped
    assert "badge-queued" in swapped
    assert 'data-action="requeue"' not in swapped
    queue = Queue("payouts", connection=real_redis)
    assert failed_job.id in queue.job_ids
    assert failed_job.id not in queue.failed_job_registry

    again = client.post(f"/admin/jobs/{failed_job.id}/requeue", headers=HX)
    assert "Only a failed job can be re-run" in again.get_data(as_text=True)
    rows = db.session.scalars(sa.select(AuditLog).where(AuditLog.action == "jobs.requeue")).all()
    assert [(r.actor_id, r.target_id) for r in rows] == [(admin.user.id, failed_job.id)]
    assert queue.job_ids.count(failed_job.id) == 1


def test_the_schedule_lists_every_periodic_job_with_last_and_next_run(signed_in, real_redis):
    client, _ = signed_in("admin")
    html = client.get("/admin/jobs").get_data(as_text=True)
    for func, _interval, _queue in PERIODIC_JOBS:
        assert f"<code>{func}</code>" in html
    assert "No scheduler is running" in html  # and the page says what runs one
    assert "python worker.py" in html
    assert "not since Redis started" in html

    periodic.Scheduler(real_redis, periodic.configured_jobs()).tick()  # every job is due
    func = "app.play.jobs.settle_stale_rounds"
    SimpleWorker([Queue("settlement", connection=real_redis)], connection=real_redis).work(
        burst=True
    )
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert "No scheduler is running" not in html
    assert "Scheduler running (worker): last tick 20" in html
    row = html[html.index(f'id="periodic-{periodic_job_id(func)}"') :]
    row = row[: row.index("</tr>")]
    assert "600 s" in row
    assert "badge-successful" in row
    assert row.count("20") >= 2  # a last run and a next run (UTC timestamps)
    assert "not since Redis started" not in row


def test_in_embedded_mode_the_page_says_the_server_runs_the_jobs(signed_in, app, monkeypatch):
    client, _ = signed_in("admin")
    monkeypatch.setitem(app.config, "REDIS_URL", "")  # what make run configures
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert "python worker.py" not in html
    assert "Embedded mode (no REDIS_URL)" in html
    assert "make run" in html
    periodic.Scheduler(app.extensions["redis"], []).tick()  # the server's own scheduler ticked
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert "this server process runs each periodic job itself" in html


def test_redis_lost_after_sign_in_gives_a_503_page_not_a_500(signed_in, app, monkeypatch):
    """The session check still reached Redis; the job registries then don't."""
    from types import SimpleNamespace

    from app.core import jobs_admin

    client, _ = signed_in("admin")
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    monkeypatch.setattr(jobs_admin, "redis_store", SimpleNamespace(client=lambda: dead))
    monkeypatch.setitem(
        app.extensions,
        "rq_queues",
        {name: Queue(name, connection=dead) for name in app.extensions["rq_queues"]},
    )
    response = client.get("/admin/jobs")
    assert response.status_code == 503
    assert "Redis is not reachable" in response.get_data(as_text=True)
    assert client.get("/admin/jobs/some-job").status_code == 503


def test_the_jobs_page_shows_the_clickhouse_sink_lag(
    app, signed_in, real_redis, factory, monkeypatch
):
    fund(factory.player().id, cash=3_00)
    client, _ = signed_in("admin")
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert "Off: set <code>CLICKHOUSE_URL</code>" in html
    monkeypatch.setitem(app.config, "CLICKHOUSE_URL", "http://jx:pw@ch.internal:8123/jackpotx")
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert "Streaming to <code>http://jx:***@ch.internal:8123/jackpotx</code>" in html
    assert ":pw@" not in html
    behind = db.session.scalar(sa.select(sa.func.count()).select_from(LedgerTransaction))
    row = html[html.index('id="sink-ledger"') :]
    row = row[: row.index("</tr>")]
    assert "<code>ledger_transactions</code>" in row
    assert f">{behind}</td>" in row
