"""Periodic jobs under real faults: ``python worker.py`` against a private ``redis-server``
(nothing on disk, as in production) with a job due every second.

Redis is SIGKILLed and started again empty on the same port: jobs run again within seconds,
in the same worker and scheduler processes. The scheduler child and then the worker child are
SIGKILLed: the supervisor starts new ones and jobs run again. No zombie is left, and SIGTERM
stops the whole tree with exit code 0. Every wait polls against a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from app.core.periodic import HEARTBEAT_KEY, LAST_RUN_KEY
from tests.live import ROOT, free_port, server_env

TICK = "tests.jobs_helpers.tick"
TICKS = "jx:test:ticks"  # one entry per run: the pid of the RQ worker process that ran it

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")


class RedisServer:
    """A private redis-server that keeps nothing on disk, killed and restarted on one port."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port, self.workdir = port, workdir
        self.proc: subprocess.Popen | None = None
        self.client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(  # noqa: S603 - the redis-server binary, fixed arguments
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.client.ping, 10, "redis-server to answer")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=5)


def wait_for(check: Callable[[], Any], timeout: float, what: str, log: Path | None = None):
    """Poll ``check`` until it is truthy (Redis errors count as not yet); seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except redis.RedisError:
            pass
        if time.monotonic() - start > timeout:
            tail = log.read_text(errors="replace")[-4000:] if log else ""
            raise AssertionError(f"no {what} within {timeout} s\n{tail}")
        time.sleep(0.05)


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
            found[int(entry.name)] = (int(ppid), state)
    return found


def children(pid: int) -> dict[int, str]:
    return {child: state for child, (ppid, state) in processes().items() if ppid == pid}


def gone(pids: set[int]) -> bool:
    alive = processes()
    return not any(pid in alive and alive[pid][1] != "Z" for pid in pids)


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.kill()


def test_periodic_jobs_resume_after_redis_dies_and_after_a_child_is_killed(
    requires_postgres, database_url, redis_server, tmp_path, request
):
    figures = request.node.user_properties  # seconds each step took; shown with ``-s``
    r = redis_server.client
    env = server_env(
        database_url,
        f"redis://127.0.0.1:{redis_server.port}/0",
        free_port(),
        LOG_LEVEL="INFO",
        PERIODIC_JOBS_OVERRIDE=f"{TICK}:1:default",
        SCHEDULER_TICK_SECONDS="0.2",
    )
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )

    def ran_by() -> int:
        return int(r.lindex(TICKS, -1))

    def scheduler_pid() -> int:
        return json.loads(r.get(HEARTBEAT_KEY))["pid"]

    def outages_logged() -> int:
        return log.read_text().count("Redis unreachable, periodic jobs paused")

    try:
        started = wait_for(lambda: r.llen(TICKS) >= 2, 30, "periodic runs at start", log)
        figures.append(("first_runs_s", round(started, 2)))
        worker, scheduler = ran_by(), scheduler_pid()
        assert set(children(supervisor.pid)) == {worker, scheduler}

        # Redis dies; the processes see it and live on.
        redis_server.kill()
        noticed = wait_for(lambda: outages_logged() == 1, 15, "outage noticed", log)
        figures.append(("outage_noticed_s", round(noticed, 2)))
        assert supervisor.poll() is None
        redis_server.start()  # same port, empty: schedule, queues and records are gone
        resumed = wait_for(lambda: r.llen(TICKS) >= 2, 20, "runs after Redis came back", log)
        figures.append(("after_redis_returned_s", round(resumed, 2)))
        assert (ran_by(), scheduler_pid()) == (worker, scheduler)  # nobody was restarted
        assert json.loads(r.hget(LAST_RUN_KEY, TICK))["status"] == "successful"
        assert outages_logged() == 1  # once per outage, not once per retry

        # The scheduler child is killed: the supervisor starts another one.
        os.kill(scheduler, signal.SIGKILL)
        before = r.llen(TICKS)
        restarted = wait_for(
            lambda: scheduler_pid() != scheduler and r.llen(TICKS) > before + 1,
            15,
            "runs from a new scheduler",
            log,
        )
        figures.append(("after_scheduler_killed_s", round(restarted, 2)))

        # The RQ worker child is killed: the supervisor starts another one.
        os.kill(worker, signal.SIGKILL)
        restarted = wait_for(lambda: ran_by() != worker, 20, "runs in a new worker", log)
        figures.append(("after_worker_killed_s", round(restarted, 2)))

        # The dead children were reaped: no zombie stays behind.
        wait_for(lambda: "Z" not in children(supervisor.pid).values(), 5, "reaped children")
        assert worker not in children(supervisor.pid)
        tree = set(children(supervisor.pid))
        assert len(tree) == 2
        tree |= {pid for child in tree for pid in children(child)}  # RQ's scheduler, a horse

        # SIGTERM stops the whole tree cleanly.
        supervisor.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        assert supervisor.wait(timeout=15) == 0
        figures.append(("stopped_s", round(time.monotonic() - stopping, 2)))
        wait_for(lambda: gone(tree), 5, "children gone after SIGTERM", log)
        sys.stdout.write(f"\nseconds: {dict(figures)}\n")
    finally:
        if supervisor.poll() is None:
            for pid in children(supervisor.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            supervisor.kill()
            supervisor.wait()
