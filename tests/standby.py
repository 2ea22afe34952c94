"""A real PostgreSQL streaming standby of the test server, for the read-replica tests.

``Standby.start`` copies the running server with ``pg_basebackup -R -X stream`` into a
temporary directory and starts it on a free port with the server's own binaries; it follows
the primary over streaming replication until ``stop``. PostgreSQL refuses to run as root:
under root every command runs as the ``postgres`` OS user (``runuser``), in a directory it
owns. The primary must accept replication connections from 127.0.0.1 (``.ci/pg-replication``
adds the ``pg_hba.conf`` line; PostgreSQL's defaults already give ``wal_level=replica`` and
``max_wal_senders=10``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: Settings a hot standby must hold at least as high as its primary, or it will not start.
MIRRORED = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StandbyUnavailable(Exception):
    """This machine cannot start a standby (no binaries, no replication permission)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


class Standby:
    def __init__(self, primary_url: sa.URL) -> None:
        self.primary_url = primary_url
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="jx-standby-"))
        self.data = self.root / "data"
        self.bin: Path | None = None
        self.as_postgres = os.geteuid() == 0
        #: A physical replication slot: the primary keeps the WAL this standby has not
        #: received (while it is stopped, or slow on a busy machine). Dropped by ``remove``.
        self.slot = f"jx_standby_{os.getpid()}_{self.port}"

    # --- running commands as the server's user ----------------------------------------------

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 - fixed argv

    def _binaries(self, major: int) -> Path:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_basebackup"))
        same = [c for c in candidates if f"/postgresql/{major}/" in c]
        found = same or candidates
        if not found or (shutil.which("runuser") is None and self.as_postgres):
            raise StandbyUnavailable("no PostgreSQL server binaries under /usr/lib/postgresql")
        return Path(found[-1]).parent

    # --- life cycle -----------------------------------------------------------------------------

    def start(self) -> Standby:
        admin = sa.create_engine(self.primary_url.set(database="postgres"))
        try:
            with admin.connect() as conn:
                major = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
                mirrored = {
                    name: conn.execute(sa.text(f"SHOW {name}")).scalar_one() for name in MIRRORED
                }
        finally:
            admin.dispose()
        self.bin = self._binaries(major)
        self._drop_orphan_slots()
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        url = self.primary_url
        for _attempt in range(3):
            # A shared server's other users may end our replication connection (a restart, a
            # pg_terminate_backend): pg_basebackup then removes the copy; take it again.
            self._drop_slot(self.slot)  # a failed attempt may have created it
            backup = self._basebackup(url)
            if backup.returncode == 0 or "unexpected termination" not in backup.stderr:
                break
        if backup.returncode != 0:
            raise StandbyUnavailable(
                "pg_basebackup failed (replication from 127.0.0.1 allowed? run "
                f".ci/pg-replication): {backup.stderr.strip()[-400:]}"
            )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "hot_standby": "on",
            "fsync": "off",
            "shared_buffers": "'32MB'",
            **{k: str(v) for k, v in mirrored.items()},
        }
        self._write("postgresql.conf", "".join(f"{k} = {v}\n" for k, v in settings.items()))
        self._write("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self._write("pg_ident.conf", "")
        self.resume()
        return self

    def _basebackup(self, url: sa.URL) -> subprocess.CompletedProcess[str]:
        assert self.bin is not None
        return self._run(
            str(self.bin / "pg_basebackup"),
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-C",
            "-S",
            self.slot,
        )

    def _primary(self, sql: str, **params: Any) -> Any:
        engine = sa.create_engine(
            self.primary_url.set(database="postgres"),
            poolclass=sa.pool.NullPool,
            isolation_level="AUTOCOMMIT",
        )
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), params).scalar()
        finally:
            engine.dispose()

    def _drop_slot(self, name: str) -> None:
        self._primary(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE slot_name = :name AND NOT active",
            name=name,
        )

    def _drop_orphan_slots(self) -> None:
        """Slots of standbys whose test run died (its pid is gone) would keep WAL forever."""
        names = self._primary(
            "SELECT string_agg(slot_name, ',') FROM pg_replication_slots"
            " WHERE slot_name LIKE 'jx\\_standby\\_%' AND NOT active"
        )
        for name in (names or "").split(","):
            parts = name.split("_")
            if len(parts) == 4 and parts[2].isdigit() and not _alive(int(parts[2])):
                self._drop_slot(name)

    def catch_up(self, timeout: float = 60.0) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        target = self._primary("SELECT pg_current_wal_lsn()::text")
        wait_for(
            lambda: self.scalar(
                "SELECT pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn)", "postgres", lsn=target
            ),
            "the standby to replay the primary's WAL",
            timeout=timeout,
        )

    def _write(self, name: str, text: str) -> None:
        path = self.data / name
        path.write_text(text)
        if self.as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def resume(self) -> None:
        """Start (or restart) the standby server and wait until it accepts reads."""
        assert self.bin is not None
        started = self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-1500:]
            raise StandbyUnavailable(f"the standby did not start: {started.stderr}\n{log}")
        wait_for(lambda: self._in_recovery(), "the standby to accept connections")

    def _in_recovery(self) -> bool:
        try:
            return bool(self.scalar("SELECT pg_is_in_recovery()"))
        except sa.exc.OperationalError:
            return False

    def halt(self) -> None:
        """Stop the server (the directory stays: ``resume`` starts it again)."""
        if self.bin is not None and (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.bin is not None:
            wait_for(
                lambda: (
                    not self._primary(
                        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = :n AND active",
                        n=self.slot,
                    )
                ),
                "the slot to be released",
            )
            self._drop_slot(self.slot)

    # --- talking to it ----------------------------------------------------------------------------

    def url(self, database: str | None = None) -> sa.URL:
        return self.primary_url.set(
            host="127.0.0.1", port=self.port, database=database or self.primary_url.database
        )

    def scalar(self, sql: str, database: str | None = None, **params: Any) -> Any:
        engine = sa.create_engine(self.url(database), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text(sql), params).scalar()
        finally:
            engine.dispose()

    def pause_replay(self) -> None:
        self.scalar("SELECT pg_wal_replay_pause()", database="postgres")
        wait_for(
            lambda: self.scalar("SELECT pg_get_wal_replay_pause_state()", "postgres") == "paused",
            "replay to pause",
        )

    def resume_replay(self) -> None:
        self.scalar("SELECT pg_wal_replay_resume()", database="postgres")
