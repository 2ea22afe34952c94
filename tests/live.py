"""A real server for real-time tests: gunicorn + GeventWebSocketWorker on a free port,
production profile, the test PostgreSQL database and Redis db."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    log_path: Path
    #: The gunicorn master's pid (its workers are its children).
    pid: int = 0

    def worker_pids(self) -> list[int]:
        """The master's live children (gunicorn workers), from /proc."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.pid and fields[0] != "Z":
                pids.append(int(stat.parent.name))
        return pids

    def run_python(self, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run ``code`` in a separate process configured like the server (another publisher)."""
        result = subprocess.run(  # noqa: S603 - our own interpreter and code
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"subprocess failed:\n{result.stdout}\n{result.stderr}")
        return result

    def scrape(self) -> str:
        """``GET /metrics`` with the server's token: the Prometheus text."""
        response = requests.get(
            f"{self.url}/metrics",
            headers={"Authorization": f"Bearer {self.env['METRICS_TOKEN']}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.text

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run(  # noqa: S603 - our own interpreter and scripts
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
        return result


def server_env(database_url: str, redis_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "JX_"))}
    env.update(
        ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SECRET_KEY=secrets.token_urlsafe(48),
        ENCRYPTION_KEY=Fernet.generate_key().decode(),
        AUDIT_CHAIN_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="1",
        LOG_LEVEL="WARNING",
        ACCESS_LOG="/dev/null",
        SOCKETIO_AUTH_RECHECK_SECONDS="1",
        RATELIMIT_ENABLED="false",
        # Production allows no scraper by address: tests scrape /metrics with this token.
        METRICS_TOKEN=secrets.token_urlsafe(24),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@contextmanager
def gunicorn(
    env: dict[str, str], log_path: Path, timeout: float = 30, app_module: str = "wsgi:app"
) -> Iterator[LiveServer]:
    port = int(env["BIND"].rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our interpreter, gunicorn and app module
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app_module],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()}")
            try:
                if requests.get(f"{url}/api/status", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not come up:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield LiveServer(url=url, env=env, log_path=log_path, pid=proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
