"""Background worker: RQ workers on the named queues plus the periodic scheduler, supervised.

``python worker.py`` (all queues) or ``python worker.py settlement payouts``; ``--burst``
drains the queues once and exits (cron, tests; no scheduler, no supervisor).

This process only supervises: it touches no Redis and runs no job, so no outage can kill it.
It forks two children, ``worker`` (an RQ worker that waits out Redis outages) and
``scheduler`` (``app.core.periodic``), restarts either when it exits (after 0.5 s, doubling
up to 30 s while it keeps dying young), reaps every child, and on SIGTERM/SIGINT passes
SIGTERM on and waits for both: a running job finishes, a second signal stops it.
docs/realtime.md, "Jobs, scheduler, outbox", says what happens while Redis is down.

Environment: ``SCHEDULER_TICK_SECONDS`` (1); ``PERIODIC_JOBS_OVERRIDE``
(``dotted.func:seconds:queue,...`` instead of ``PERIODIC_JOBS``, for tests).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# RQ forks a process per job: per-process figure files would pile up in the web's Prometheus
# directory. The web's /metrics reads the job queues and workers' totals from Redis instead.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import StopRequested

from app import create_app
from app.core import periodic
from app.core.db import use_job_timeouts
from app.core.queues import QUEUE_NAMES

log = logging.getLogger("jackpotx.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
#: A child that lived this long is restarted after RESTART_DELAY again.
HEALTHY_AFTER = 60.0
#: RQ's registry cleanup, which also restarts its own scheduler (retries, enqueue_in) when
#: a Redis outage killed it; RQ's default is 10 minutes.
RQ_MAINTENANCE_INTERVAL = 60


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda _signum, _frame: stop.set())


# The worker child.


class SupervisedWorker(Worker):
    """RQ's worker, sharing the child's stop event both ways."""

    stop_event: threading.Event
    #: RQ backs off up to 60 s between reconnection attempts while it waits for a job; a
    #: shorter cap resumes work within seconds of Redis coming back.
    max_connection_wait_time = 5.0

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        self.stop_event.set()

    def check_for_suspension(self, burst: bool) -> None:
        # First step of RQ's work loop, inside its try: a stop signal that came before RQ
        # installed its own handlers ends the loop here, through RQ's teardown.
        if self.stop_event.is_set():
            raise StopRequested
        super().check_for_suspension(burst)


def wait_for_redis(connection: Redis, stop: threading.Event) -> bool:
    """Block until Redis answers (``True``) or ``stop`` is set (``False``)."""
    delay, down = 0.5, False
    while not stop.is_set():
        try:
            connection.ping()
        except periodic.REDIS_DOWN as exc:
            if not down:
                log.error("Redis unreachable, the RQ worker waits for it: %s", exc)
                down = True
            stop.wait(delay)
            delay = min(delay * 2, 5.0)
            continue
        if down:
            log.warning("Redis is back: the RQ worker resumes")
        return True
    return False


def run_worker(app: Flask, queue_names: list[str], stop: threading.Event) -> None:
    """RQ's work loop, started again whenever it ends on a Redis error, until ``stop``."""
    connection = app.extensions["redis"]
    # Jobs run in horses forked from here: they inherit the app context.
    with app.app_context():
        queues = [app.extensions["rq_queues"][name] for name in queue_names]
        while wait_for_redis(connection, stop):
            try:
                worker = SupervisedWorker(
                    queues, connection=connection, maintenance_interval=RQ_MAINTENANCE_INTERVAL
                )
                worker.stop_event = stop
                log.info("worker listening on %s", ", ".join(queue_names))
                # RQ retries a lost connection while it waits for a job, but quits its loop on
                # one anywhere else (and may raise from its teardown): start it again.
                worker.work(with_scheduler=True)
            except RedisError as exc:
                log.warning("RQ worker stopped on a Redis error: %s", exc)
            _stop_on_signals(stop)  # RQ replaced our handlers with its own
            if not stop.is_set():
                log.warning("RQ worker loop ended: starting it again")
                stop.wait(1.0)


def run_scheduler(app: Flask, stop: threading.Event) -> None:
    jobs = periodic.configured_jobs(os.environ.get("PERIODIC_JOBS_OVERRIDE", ""))
    tick = float(os.environ.get("SCHEDULER_TICK_SECONDS") or 1.0)
    periodic.Scheduler(app.extensions["redis"], jobs, tick=tick).run(stop)


# The supervisor.


@dataclass
class Child:
    role: str
    target: Callable[[threading.Event], None]
    pid: int = 0
    started: float = 0.0
    delay: float = RESTART_DELAY
    restart_at: float | None = None


def _spawn(child: Child) -> None:
    # Signals wait until the child has its own handlers (or the parent is out of fork).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's side, seen by the tests through its effects
        code: Any = 1
        try:
            # Its own process group: the terminal's Ctrl+C reaches only the supervisor, which
            # passes SIGTERM on, and what the child leaves behind can be signalled as a group.
            os.setpgid(0, 0)
            stop = threading.Event()
            _stop_on_signals(stop)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            child.target(stop)
            code = 0
        except SystemExit as exc:
            code = 0 if exc.code is None else exc.code
        except BaseException:
            log.exception("%s crashed", child.role)
        finally:
            logging.shutdown()
            os._exit(code if isinstance(code, int) else 1)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    child.pid, child.started, child.restart_at = pid, time.monotonic(), None
    log.info("%s started (pid %d)", child.role, pid)


def _kill(pid: int, sig: int, *, group: bool = False) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(children: list[Child], *, stopping: bool) -> None:
    """Collect every exited child; schedule a restart for ours unless stopping."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        child = next((c for c in children if c.pid == pid), None)
        if child is None:
            continue  # an orphan adopted by us as PID 1 of a container: reaped, nothing more
        child.pid = 0
        # What it leaves behind (RQ's scheduler process) goes with it.
        _kill(pid, signal.SIGTERM, group=True)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            log.info("%s (pid %d) stopped with %d", child.role, pid, code)
            continue
        lived = time.monotonic() - child.started
        if lived >= HEALTHY_AFTER:
            child.delay = RESTART_DELAY
        child.restart_at = time.monotonic() + child.delay
        log.error(
            "%s (pid %d) exited with %d after %.0f s: restarting in %.1f s",
            child.role,
            pid,
            code,
            lived,
            child.delay,
        )
        child.delay = min(child.delay * 2, MAX_RESTART_DELAY)


def supervise(children: list[Child]) -> int:
    """Run ``children``, restarting each when it exits, until SIGTERM/SIGINT; then stop them."""
    signals: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: signals.append(signum))
    for child in children:
        _spawn(child)
    forwarded = 0
    while True:
        # Every stop signal is passed on: RQ finishes a running job on the first, not the second.
        while forwarded < len(signals):
            forwarded += 1
            log.info("stopping (signal %d)", signals[forwarded - 1])
            for child in children:
                if child.pid:
                    _kill(child.pid, signal.SIGTERM)
        _reap(children, stopping=bool(signals))
        if signals:
            if not any(child.pid for child in children):
                return 0
        else:
            now = time.monotonic()
            for child in children:
                if not child.pid and child.restart_at is not None and now >= child.restart_at:
                    _spawn(child)
        time.sleep(0.1)


def main(queue_names: list[str], *, burst: bool = False) -> int:
    # Jobs (settlement, reports, payouts) get the long database timeouts, not the web's.
    use_job_timeouts()
    app = create_app()
    if not app.config["REDIS_URL"]:
        sys.exit("worker.py needs REDIS_URL; the embedded default runs jobs in-process")
    unknown = sorted(set(queue_names) - set(QUEUE_NAMES))
    if unknown:
        sys.exit(f"unknown queue(s): {', '.join(unknown)}; known: {', '.join(QUEUE_NAMES)}")
    if burst:
        with app.app_context():
            queues = [app.extensions["rq_queues"][name] for name in queue_names]
            Worker(queues, connection=app.extensions["redis"]).work(burst=True)
        return 0
    # The children are forked with this app: the supervisor never opens its connections.
    return supervise(
        [
            Child("worker", lambda stop: run_worker(app, queue_names, stop)),
            Child("scheduler", lambda stop: run_scheduler(app, stop)),
        ]
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    burst = "--burst" in args
    names = [a for a in args if a != "--burst"]
    sys.exit(main(names or list(QUEUE_NAMES), burst=burst))
