"""The fault suite: the production profile (gunicorn + gevent + PostgreSQL + Redis) under real
faults. Redis is a private ``redis-server`` on its own port, killed and restarted by the
tests; row locks are held and backends terminated on the real PostgreSQL; no failure is
mocked. Every scenario prints its figures (requests, 5xx, money delta, time to recover) in
the terminal summary and ends with ``wallets reconcile`` clean."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from app.core import dbroles
from app.core.config import SANDBOX_IN_PRODUCTION_ACK
from app.core.extensions import db
from tests.live import LiveServer, free_port, gunicorn, server_env

FIGURES: list[str] = []
SERVER_APP_NAME = "jackpotx-fault-server"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("fault suite figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def figure(scenario: str, **values: Any) -> None:
    """Record one scenario's figures for the summary (and the closing note)."""
    FIGURES.append(f"{scenario}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


@dataclass
class PrivateRedis:
    """A redis-server of our own, on a port nobody else uses, that the test may kill."""

    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(  # noqa: S603 - the system's redis-server
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: no goodbye to its clients, every connection drops at once."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def fault_env(database_url: str, redis_url: str, port: int, **extra: str) -> dict[str, str]:
    """The production profile with the limiter on (it is part of what fails); the server's
    connections carry ``application_name`` so a test can terminate exactly those."""
    sep = "&" if "?" in database_url else "?"
    return server_env(
        f"{database_url}{sep}application_name={SERVER_APP_NAME}",
        redis_url,
        port,
        RATELIMIT_ENABLED="true",
        RATE_LIMIT_CALLBACK="100000 per minute",
        RATE_LIMIT_API="100000 per minute",
        RATE_LIMIT_AUTH="100000 per minute",
        CAPTCHA_REQUIRED="false",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST="8",
        # Withdrawals pay out through the sandbox, the one payout adapter (no real players).
        SANDBOX_GATEWAY_ENABLED="true",
        SANDBOX_GATEWAY_IN_PRODUCTION=SANDBOX_IN_PRODUCTION_ACK,
        **extra,
    )


@pytest.fixture(scope="module")
def server_database_url(app, database_url) -> Iterator[str]:
    """What the live servers log in as: the least-privilege app role of production (issue 21,
    `db roles`), granted on the test database; the tests themselves stay superuser (they
    truncate and inspect). Ownership goes back to the superuser afterwards."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the fault suite needs PostgreSQL")
    suffix = re.sub(r"[^a-z0-9_]", "_", os.environ.get("JX_TEST_DB_SUFFIX", "main").lower())
    owner, app_role = f"jx_fowner_{suffix}"[:63], f"jx_fapp_{suffix}"[:63]
    admin = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        dbroles.drop(conn, app_role, owner)
        dbroles.apply(conn, owner, app_role)
    try:
        yield admin.url.set(username=app_role, password=None).render_as_string(False)
    finally:
        with admin.begin() as conn:
            dbroles.drop(conn, app_role, owner)
        admin.dispose()


@pytest.fixture(scope="module")
def live(app, server_database_url, private_redis, tmp_path_factory) -> Iterator[LiveServer]:
    port = free_port()
    env = fault_env(server_database_url, private_redis.url, port)
    with gunicorn(env, tmp_path_factory.mktemp("faults") / "gunicorn.log") as server:
        yield server


@pytest.fixture
def committed_db(committed_db: None) -> Iterator[None]:
    """The suite's ``committed_db``, but the tables are emptied only once the live servers'
    connections are idle: their after-commit queue (loyalty points, tournament scores) may
    still be draining the last callbacks, and a TRUNCATE of every table racing it deadlocks."""
    yield
    wait_for_servers_idle()


def wait_for_servers_idle(timeout: float = 30, quiet: float = 0.3) -> None:
    """Until no connection of a fault server has had a statement or transaction open for
    ``quiet`` seconds (gives up after ``timeout``: the TRUNCATE then waits or fails loudly)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    busy = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND state <> 'idle'"
    )
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            if conn.dialect.name != "postgresql":
                return
            working = conn.scalar(busy, {"name": SERVER_APP_NAME})
        now = time.monotonic()
        if working:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= quiet:
            return
        time.sleep(0.05)


@pytest.fixture
def as_server(app, live, monkeypatch) -> LiveServer:
    """Rows this process writes (provider secrets, tokens) readable by the live server."""
    monkeypatch.setitem(app.config, "ENCRYPTION_KEY", live.env["ENCRYPTION_KEY"])
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", live.env["AUDIT_CHAIN_KEY"])
    monkeypatch.setitem(app.config, "JWT_SECRET_KEY", live.env["JWT_SECRET_KEY"])
    return live


@dataclass
class Answers:
    """HTTP answers of a burst: status codes and bodies, in request order."""

    items: list[tuple[int, Any]] = field(default_factory=list)

    def statuses(self) -> list[int]:
        return [status for status, _ in self.items]

    def server_errors(self) -> int:
        return sum(1 for status, _ in self.items if status >= 500 and status != 503)

    def count(self, predicate: Any) -> int:
        return sum(1 for item in self.items if predicate(*item))


def post(url: str, *, timeout: float = 30, **kw: Any) -> tuple[int, Any]:
    """One POST; a refused or reset connection is status 0 (the client saw no answer)."""
    try:
        response = requests.post(url, timeout=timeout, **kw)
    except requests.RequestException as exc:
        return 0, {"transport_error": type(exc).__name__}
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200]
    if response.status_code >= 500 and isinstance(body, dict):
        # Which request it was, to find it in the server's log.
        body["correlation_id"] = response.headers.get("X-Correlation-ID")
    return response.status_code, body


def burst(calls: list[Any], workers: int = 32) -> Answers:
    """Run zero-argument callables concurrently; answers in call order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return Answers(list(pool.map(lambda call: call(), calls)))
