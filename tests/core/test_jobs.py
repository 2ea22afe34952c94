"""Background jobs: failed ones visible to staff and re-runnable, the periodic schedule with
each job's last run, 503 when Redis is down."""

from __future__ import annotations

from datetime import datetime

import pytest
import redis
from rq import Queue, SimpleWorker

from app.core import periodic
from app.core.models import AuditLog
from app.core.schedule import PERIODIC_JOBS, periodic_job_id


@pytest.fixture
def real_redis(app):
    if not app.config["REDIS_URL"]:
        pytest.skip("needs a Redis server")
    return app.extensions["redis"]


@pytest.fixture
def failed_job(real_redis):
    """A payout job that failed in a real (in-process) RQ worker."""
    queue = Queue("payouts", connection=real_redis)
    job = queue.enqueue("tests.jobs_helpers.explode", 77)
    SimpleWorker([queue], connection=real_redis).work(burst=True)
    job.refresh()
    assert job.is_failed
    return job


def test_staff_see_failed_jobs_per_queue_with_the_error(client, factory, token_for, failed_job):
    admin = factory.staff("admin")
    response = client.get("/api/admin/jobs", headers=token_for(admin))
    assert response.status_code == 200
    data = response.get_json()["data"]
    queues = {q["name"]: q for q in data["queues"]}
    assert set(queues) == {"default", "settlement", "payouts", "reports", "notifications"}
    assert queues["payouts"]["failed_count"] == 1
    (job,) = queues["payouts"]["failed"]
    assert job["id"] == failed_job.id
    assert job["func"] == "tests.jobs_helpers.explode"
    assert job["error"] == "ValueError: payout gateway said no for order 77"
    assert "outbox" in data
    assert data["outbox"]["pending"] == 0

    detail = client.get(f"/api/admin/jobs/{failed_job.id}", headers=token_for(admin))
    assert "Traceback" in detail.get_json()["data"]["exc_info"]


@pytest.mark.parametrize("role", ["manager", "support", "agent"])
def test_staff_without_jobs_manage_are_denied(client, factory, token_for, role):
    response = client.get("/api/admin/jobs", headers=token_for(factory.staff(role)))
    assert response.status_code == 403
    assert response.get_json()["code"] == "ACCESS_DENIED"


def test_players_are_denied(client, factory, token_for):
    response = client.get("/api/admin/jobs", headers=token_for(factory.player()))
    assert response.status_code == 403


def test_a_failed_job_is_requeued_once_and_audited(
    client, factory, token_for, failed_job, real_redis
):
    admin = factory.staff("admin")
    url = f"/api/admin/jobs/{failed_job.id}/requeue"
    response = client.post(url, headers=token_for(admin))
    assert response.status_code == 200
    assert response.get_json()["data"]["status"] == "queued"
    queue = Queue("payouts", connection=real_redis)
    assert failed_job.id in queue.job_ids
    assert failed_job.id not in queue.failed_job_registry

    again = client.post(url, headers=token_for(admin))
    assert again.status_code == 409
    assert again.get_json()["code"] == "CONFLICT"

    from app.core.extensions import db

    rows = db.session.scalars(db.select(AuditLog).where(AuditLog.action == "jobs.requeue")).all()
    assert len(rows) == 1
    assert rows[0].actor_id == admin.id
    assert rows[0].target_id == failed_job.id
    assert rows[0].before["error"].startswith("ValueError")


def test_requeueing_an_unknown_job_is_not_found(client, factory, token_for, real_redis):
    response = client.post(
        "/api/admin/jobs/nope/requeue", headers=token_for(factory.staff("admin"))
    )
    assert response.status_code == 404


def test_a_job_id_rq_would_refuse_is_not_found_not_a_500(client, factory, token_for, real_redis):
    headers = token_for(factory.staff("admin"))
    assert client.get("/api/admin/jobs/free or opt_in", headers=headers).status_code == 404
    answer = client.post("/api/admin/jobs/a >= 0/requeue", headers=headers)
    assert answer.status_code == 404
    assert answer.get_json()["code"] == "NOT_FOUND"


def test_the_jobs_api_answers_503_when_redis_is_down(client, factory, token_for, app, monkeypatch):
    admin = factory.staff("admin")
    headers = token_for(admin)
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    monkeypatch.setitem(app.extensions, "redis", dead)
    monkeypatch.setitem(
        app.extensions,
        "rq_queues",
        {name: Queue(name, connection=dead) for name in app.extensions["rq_queues"]},
    )
    response = client.get("/api/admin/jobs", headers=headers)
    assert response.status_code == 503
    body = response.get_json()
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert "127.0.0.1:1" not in body["message"]


def test_the_jobs_api_shows_the_scheduler_and_each_periodic_jobs_last_run(
    client, factory, token_for, real_redis
):
    headers = token_for(factory.staff("admin"))
    data = client.get("/api/admin/jobs", headers=headers).get_json()["data"]
    scheduler = data["scheduler"]
    assert scheduler.pop("where").startswith("No scheduler is running")
    assert scheduler == {"alive": False, "name": None, "last_tick_at": None, "mode": "worker"}
    assert [p["func"] for p in data["periodic"]] == [f for f, _i, _q in PERIODIC_JOBS]
    assert not any(p["scheduled"] or p["last_run_at"] or p["next_run_at"] for p in data["periodic"])

    periodic.Scheduler(real_redis, periodic.configured_jobs()).tick()  # all due: a fresh Redis
    SimpleWorker([Queue("settlement", connection=real_redis)], connection=real_redis).work(
        burst=True
    )
    data = client.get("/api/admin/jobs", headers=headers).get_json()["data"]
    assert data["scheduler"]["alive"] is True
    assert data["scheduler"]["last_tick_at"]
    rows = {p["func"]: p for p in data["periodic"]}
    settled = rows["app.play.jobs.settle_stale_rounds"]
    assert settled["id"] == periodic_job_id("app.play.jobs.settle_stale_rounds")
    assert settled["scheduled"] is True
    assert settled["last_status"] == "successful"
    assert settled["last_error"] is None
    ran, due = (datetime.fromisoformat(settled[k]) for k in ("last_run_at", "next_run_at"))
    assert ran < due
    waiting = rows["app.core.jobs.relay_outbox"]  # queued on "default", no worker ran it
    assert waiting["last_run_at"] is None
    assert waiting["next_run_at"]


def test_periodic_jobs_exist_and_are_importable():
    import importlib

    assert PERIODIC_JOBS
    for func, interval, queue_name in PERIODIC_JOBS:
        module, name = func.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name))
        assert interval >= 10
        assert queue_name in {"default", "settlement", "payouts", "reports", "notifications"}
