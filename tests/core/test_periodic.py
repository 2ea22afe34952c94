"""The periodic scheduler against the test Redis, one process: a slot is enqueued once however
many schedulers tick, a run waits for the previous one, missed slots are not replayed, a Redis
restarted empty runs everything again, and the worker records each run's outcome.

The scheduler under real faults (Redis killed, children killed) is
``test_scheduler_supervision.py``."""

from __future__ import annotations

import json

import pytest
from rq import Queue, SimpleWorker

from app.core.periodic import (
    LAST_RUN_KEY,
    LEGACY_RQ_SCHEDULER_KEY,
    PeriodicJob,
    Scheduler,
    configured_jobs,
    last_runs,
)
from app.core.schedule import PERIODIC_JOBS, periodic_job_id

TICK = PeriodicJob("tests.jobs_helpers.tick", 60, "default")
BOOM = PeriodicJob("tests.jobs_helpers.boom", 60, "default")


@pytest.fixture
def real_redis(app):
    if not app.config["REDIS_URL"]:
        pytest.skip("needs a Redis server")
    return app.extensions["redis"]


def mid_slot(job: PeriodicJob, slot: int = 1_000_000) -> float:
    """A moment well inside ``slot`` of ``job`` (ticks at fixed times, no sleeping)."""
    return slot * job.interval + job.offset + job.interval / 2


def work(connection, name: str = "default") -> None:
    SimpleWorker([Queue(name, connection=connection)], connection=connection).work(burst=True)


def ticks(connection) -> int:
    return connection.llen("jx:test:ticks")


def test_the_schedule_is_periodic_jobs_unless_overridden():
    assert configured_jobs() == [PeriodicJob(f, i, q) for f, i, q in PERIODIC_JOBS]
    assert configured_jobs(" a.b:5:default, c.d:0:payouts") == [
        PeriodicJob("a.b", 5, "default"),
        PeriodicJob("c.d", 1, "payouts"),
    ]


def test_a_slot_is_enqueued_once_however_many_schedulers_tick(real_redis):
    at = mid_slot(TICK)
    first, second = Scheduler(real_redis, [TICK]), Scheduler(real_redis, [TICK])
    assert first.tick(at) == [TICK.func]
    assert second.tick(at) == []
    assert first.tick(at + 1) == []
    assert Queue("default", connection=real_redis).job_ids == [periodic_job_id(TICK.func)]
    work(real_redis)
    assert second.tick(at + TICK.interval) == [TICK.func]  # the next slot: whoever is first
    work(real_redis)
    assert ticks(real_redis) == 2


def test_a_run_waits_for_the_previous_one_and_missed_slots_are_not_replayed(real_redis):
    scheduler = Scheduler(real_redis, [TICK])
    at = mid_slot(TICK)
    assert scheduler.tick(at) == [TICK.func]
    # No worker: the next slots find the run still queued and add nothing.
    for later in range(1, 4):
        assert scheduler.tick(at + later * TICK.interval) == []
    assert Queue("default", connection=real_redis).count == 1
    work(real_redis)
    # Ten slots later the job runs once, not once per missed slot.
    assert scheduler.tick(at + 10 * TICK.interval) == [TICK.func]
    work(real_redis)
    assert ticks(real_redis) == 2


def test_a_redis_restarted_empty_runs_every_job_again_at_once(real_redis):
    scheduler = Scheduler(real_redis, [TICK, BOOM])
    at = mid_slot(TICK)
    assert sorted(scheduler.tick(at)) == sorted([TICK.func, BOOM.func])
    work(real_redis)
    assert scheduler.tick(at + 1) == []
    real_redis.flushdb()  # what a restart of our Redis (nothing on disk) leaves
    assert sorted(scheduler.tick(at + 2)) == sorted([TICK.func, BOOM.func])


def test_each_run_records_its_outcome_and_a_new_run_supersedes_a_failure(real_redis):
    scheduler = Scheduler(real_redis, [TICK, BOOM])
    at = mid_slot(TICK)
    scheduler.tick(at)
    work(real_redis)
    runs = last_runs(real_redis)
    assert runs[TICK.func]["status"] == "successful"
    assert runs[TICK.func]["error"] is None
    assert runs[TICK.func]["started_at"] <= runs[TICK.func]["finished_at"]
    assert runs[BOOM.func]["status"] == "failed"
    assert runs[BOOM.func]["error"] == "RuntimeError: periodic job went wrong"
    failed = Queue("default", connection=real_redis).failed_job_registry
    assert periodic_job_id(BOOM.func) in failed

    assert BOOM.func in scheduler.tick(at + BOOM.interval)
    assert periodic_job_id(BOOM.func) not in failed
    assert last_runs(real_redis)[BOOM.func]["status"] == "failed"  # until the new run ends


def test_a_start_forgets_removed_jobs_and_takes_ours_from_rq_scheduler(real_redis):
    real_redis.hset(LAST_RUN_KEY, "app.jobs.removed", json.dumps({"status": "successful"}))
    legacy = {periodic_job_id(TICK.func): 1, "someone-elses-job": 2}
    real_redis.zadd(LEGACY_RQ_SCHEDULER_KEY, legacy)
    Scheduler(real_redis, [TICK]).tick(mid_slot(TICK))
    assert "app.jobs.removed" not in last_runs(real_redis)
    assert real_redis.zrange(LEGACY_RQ_SCHEDULER_KEY, 0, -1) == [b"someone-elses-job"]
