"""The periodic scheduler: each job of ``app.core.schedule.PERIODIC_JOBS`` enqueued once per
interval by whichever scheduler process gets there first, resuming by itself after Redis
comes back.

Invariants:

* The schedule lives in code, not in Redis. A Redis that restarts empty (ours keeps nothing on
  disk) takes nothing the scheduler needs: the next tick finds every job's current slot
  unclaimed, so each job runs once at once, then once per interval again.
* A job's time line is cut into slots of ``interval`` seconds (shifted by a per-job offset so
  that jobs sharing an interval do not all fire in the same second). A run is due when its
  slot is claimed with ``SET NX`` on ``jx:schedule:slot:<job>:<slot>``: two schedulers (two
  ``worker.py``) never enqueue the same slot twice. Missed slots are not replayed: after an
  outage a job runs once, not once per missed interval.
* A job keeps one RQ id (``periodic_job_id``). While its previous run is still queued or
  running the slot is skipped, so a stopped worker never piles up copies; jobs are idempotent
  and the next slot catches up.
* When a run ends, RQ's success/failure callback writes its outcome into the hash
  ``jx:schedule:last_run`` (one field per job), which the jobs page and API read.
* Redis errors never end the loop: the first one of an outage is logged, the loop retries with
  backoff (up to ``max_backoff``), and says when Redis is back.
* The embedded default (no ``REDIS_URL``: jobs run in-process, no ``worker.py``) runs the same
  schedule inside the web server (``InProcessScheduler``, started by ``python wsgi.py``): one
  scheduler per process (``start_in_process``), its slots and records in the process's
  fakeredis, each due job called at once in its own app context and recorded as a worker
  would record it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.utils import import_attribute

from app.core.extensions import db
from app.core.schedule import PERIODIC_JOBS, periodic_job_id

log = logging.getLogger(__name__)

#: What an unreachable or restarting Redis raises.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)

LAST_RUN_KEY = "jx:schedule:last_run"
HEARTBEAT_KEY = "jx:schedule:heartbeat"
SLOT_KEY = "jx:schedule:slot:{name}:{slot}"
#: rq-scheduler's sorted set (the scheduler before this one); our old entries are removed.
LEGACY_RQ_SCHEDULER_KEY = "rq:scheduler:scheduled_jobs"


@dataclass(frozen=True)
class PeriodicJob:
    func: str  #: dotted path; also the job's name in the schedule
    interval: int  #: seconds
    queue: str

    @property
    def offset(self) -> int:
        # Stable across processes and restarts (unlike hash()), so every scheduler agrees.
        return zlib.crc32(self.func.encode()) % self.interval

    def slot(self, at: float) -> int:
        return int((at - self.offset) // self.interval)

    def next_run(self, at: float) -> float:
        return (self.slot(at) + 1) * self.interval + self.offset


def configured_jobs(override: str = "") -> list[PeriodicJob]:
    """``PERIODIC_JOBS``, or ``override`` (``"dotted.func:seconds:queue,..."``, for tests)."""
    if not override.strip():
        return [PeriodicJob(f, interval, q) for f, interval, q in PERIODIC_JOBS]
    jobs = []
    for item in override.split(","):
        func, interval, queue_name = item.strip().rsplit(":", 2)
        jobs.append(PeriodicJob(func, max(1, int(interval)), queue_name))
    return jobs


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


# Run records: written by the worker when a periodic run ends (RQ callbacks, by dotted path).


def write_record(
    connection: Redis,
    name: str,
    *,
    started: float | None,
    finished: float,
    status: str,
    error: str | None,
    job_id: str,
) -> None:
    record = {
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "status": status,
        "error": error,
        "job_id": job_id,
    }
    connection.hset(LAST_RUN_KEY, name, json.dumps(record))


def _record(job: Job, connection: Redis, status: str, error: str | None) -> None:
    name = job.meta.get("jackpotx_periodic") or job.func_name
    started = job.started_at.timestamp() if job.started_at else None
    write_record(
        connection,
        str(name),
        started=started,
        finished=time.time(),
        status=status,
        error=error,
        job_id=job.id,
    )


def record_success(job: Job, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> None:
    _record(job, connection, "successful", None)


def record_failure(job: Job, connection: Redis, exc_type: Any, exc_value: Any, *args: Any) -> None:
    name = getattr(exc_type, "__name__", str(exc_type))
    _record(job, connection, "failed", f"{name}: {exc_value}"[:300])


# Enqueueing one run.


def _previous_run_pending(queue: Queue, job_id: str) -> bool:
    # The status field alone: no unpickling of a job an older release may have written.
    status = queue.connection.hget(Job.key_for(job_id), "status")
    if status is None:
        return False
    status = _text(status)
    if status == JobStatus.STARTED:
        # A run whose worker died is failed by RQ's registry cleanup, which unblocks the job.
        return True
    # "queued" but gone from the queue (emptied by hand): not pending, or it never runs again.
    return status == JobStatus.QUEUED and queue.get_job_position(job_id) is not None


def enqueue_run(connection: Redis, job: PeriodicJob, slot: int) -> Job | None:
    """Enqueue one run of ``job`` (``None``: its previous run is still queued or running)."""
    queue = Queue(job.queue, connection=connection)
    job_id = periodic_job_id(job.func)
    if _previous_run_pending(queue, job_id):
        log.info("%s: previous run still pending, slot %s skipped", job.func, slot)
        return None
    with connection.pipeline() as pipe:
        run = queue.enqueue(
            job.func,
            job_id=job_id,
            meta={"jackpotx_periodic": job.func, "slot": slot},
            on_success=Callback(record_success),
            on_failure=Callback(record_failure),
            pipeline=pipe,
        )
        # The new run supersedes the last failure (its outcome stays in LAST_RUN_KEY).
        queue.failed_job_registry.remove(job_id, pipeline=pipe)
        pipe.execute()
    return run


# The loop.


class Scheduler:
    """Claims due slots and enqueues their runs, once per ``tick`` seconds, until stopped."""

    #: Where the runs happen, as staff see it (``jobs_admin.schedule``).
    mode = "worker"

    def __init__(
        self,
        connection: Redis,
        jobs: Iterable[PeriodicJob],
        *,
        tick: float = 1.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.clock = clock
        self.jobs = list(jobs)
        self.tick_seconds = tick
        self.max_backoff = max_backoff
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._tidied = False

    def _tidy(self) -> None:
        """Once per start: drop records of jobs no longer scheduled, and our entries from
        rq-scheduler's set (so an old-release scheduler still running stops enqueuing them)."""
        names = {job.func for job in self.jobs}
        stale = [f for f in map(_text, self.connection.hkeys(LAST_RUN_KEY)) if f not in names]
        if stale:
            self.connection.hdel(LAST_RUN_KEY, *stale)
        ids = {periodic_job_id(job.func) for job in self.jobs}
        entries = map(_text, self.connection.zrange(LEGACY_RQ_SCHEDULER_KEY, 0, -1))
        legacy = [entry for entry in entries if entry in ids]
        if legacy:
            self.connection.zrem(LEGACY_RQ_SCHEDULER_KEY, *legacy)
        self._tidied = True

    def tick(self, now: float | None = None) -> list[str]:
        """Claim every job's current slot; enqueue the runs claimed. Returns their names."""
        now = self.clock() if now is None else now
        if not self._tidied:
            self._tidy()
        heartbeat = {"name": self.name, "pid": os.getpid(), "at": _iso(now), "mode": self.mode}
        with self.connection.pipeline(transaction=False) as pipe:
            for job in self.jobs:
                key = SLOT_KEY.format(name=job.func, slot=job.slot(now))
                pipe.set(key, self.name, nx=True, ex=job.interval + 60)
            ttl = max(10, int(self.tick_seconds * 5))
            pipe.set(HEARTBEAT_KEY, json.dumps(heartbeat), ex=ttl)
            claimed = pipe.execute()[: len(self.jobs)]
        enqueued = []
        for job, won in zip(self.jobs, claimed, strict=True):
            if won and self.start_run(job, job.slot(now)):
                enqueued.append(job.func)
        return enqueued

    def start_run(self, job: PeriodicJob, slot: int) -> bool:
        """Start one run of ``job`` (``False``: skipped). Here: enqueue it for ``worker.py``."""
        return enqueue_run(self.connection, job, slot) is not None

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set. A Redis outage pauses the schedule; nothing ends it."""
        log.info("scheduler %s: %d periodic jobs", self.name, len(self.jobs))
        down_since: float | None = None
        backoff = self.tick_seconds
        while not stop.is_set():
            try:
                self.tick()
            except REDIS_DOWN as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    log.error("Redis unreachable, periodic jobs paused until it returns: %s", exc)
                backoff = min(backoff * 2, self.max_backoff)
                stop.wait(backoff)
                continue
            except Exception:
                # A bug must not stop the schedule either; the next tick tries again.
                log.exception("scheduler tick failed")
                stop.wait(min(self.max_backoff, 5.0))
                continue
            if down_since is not None:
                log.warning(
                    "Redis is back after %.0f s: periodic jobs resumed",
                    time.monotonic() - down_since,
                )
                down_since = None
                backoff = self.tick_seconds
            stop.wait(self.tick_seconds)
        log.info("scheduler %s: stopped", self.name)


class InProcessScheduler(Scheduler):
    """The embedded default's scheduler: the same slots, but a due job is called at once in
    this process (its own app context and session), as the synchronous queues run every other
    job there. A run that raises is logged and recorded ``failed``; the loop goes on."""

    mode = "in-process"

    def __init__(self, app: Flask, connection: Redis, jobs: Iterable[PeriodicJob], **kw: Any):
        super().__init__(connection, jobs, **kw)
        self.app = app

    def start_run(self, job: PeriodicJob, slot: int) -> bool:
        started = time.time()
        status, error = "successful", None
        try:
            func = import_attribute(job.func)
            with self.app.app_context():
                try:
                    func()
                finally:
                    db.session.remove()
        except Exception as exc:
            log.exception("periodic job %s failed", job.func)
            status, error = "failed", f"{type(exc).__name__}: {exc}"[:300]
        write_record(
            self.connection,
            job.func,
            started=started,
            finished=time.time(),
            status=status,
            error=error,
            job_id=f"{periodic_job_id(job.func)}-{slot}",
        )
        return True


def jobs_in_process(app: Flask) -> bool:
    """Whether this app runs its jobs in-process (no ``REDIS_URL``: no worker to run them)."""
    return not app.config.get("REDIS_URL")


_in_process: InProcessScheduler | None = None
_in_process_lock = threading.Lock()


def start_in_process(app: Flask, stop: threading.Event | None = None) -> InProcessScheduler | None:
    """Start the in-process scheduler in a background thread (a greenlet under gevent), once
    per process. ``None`` when this app's jobs belong to ``worker.py`` (``REDIS_URL`` set) or
    ``EMBEDDED_SCHEDULER`` is off; the running one when called again."""
    global _in_process
    if not jobs_in_process(app) or not app.config.get("EMBEDDED_SCHEDULER", True):
        return None
    with _in_process_lock:
        if _in_process is None:
            jobs = configured_jobs(os.environ.get("PERIODIC_JOBS_OVERRIDE", ""))
            tick = float(os.environ.get("SCHEDULER_TICK_SECONDS", "1"))
            scheduler = InProcessScheduler(app, app.extensions["redis"], jobs, tick=tick)
            thread = threading.Thread(
                target=scheduler.run,
                args=(stop or threading.Event(),),
                name="jackpotx-scheduler",
                daemon=True,
            )
            thread.start()
            log.info("periodic jobs run in this process (embedded: no REDIS_URL, no worker.py)")
            _in_process = scheduler
        return _in_process


# What staff see.


def heartbeat(connection: Redis) -> dict[str, Any] | None:
    """The latest scheduler tick (``None``: no scheduler has ticked for a few seconds)."""
    raw = connection.get(HEARTBEAT_KEY)
    return json.loads(raw) if raw else None


def last_runs(connection: Redis) -> dict[str, dict[str, Any]]:
    """Each job's last run (name -> record), as recorded since Redis last started."""
    return {_text(k): json.loads(v) for k, v in connection.hgetall(LAST_RUN_KEY).items()}
