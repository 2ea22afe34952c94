"""Socket.IO capacity and push latency on one gunicorn + GeventWebSocketWorker process.

    python bench/sockets.py [--connections 10000] [--events 1000] [--clients 4]

Starts the app (production profile, its own PostgreSQL database ``jackpotx_bench_sockets`` and the
Redis at ``BENCH_REDIS_URL``) on a free loopback port, opens N authenticated connections (one
player each) from client processes, measures the server worker's RSS per connection, then
commits notifications for random connected players and measures the time from commit to
the client receiving the ``notification`` push. Loopback only; every phase has a deadline.

Last line: ``connections=<n> rss_kb_per_conn=<n> push_p50_ms=<n> push_p99_ms=<n> dropped=<n>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- client processes (gevent) ----------------------------------------------------------------


def client_main(url: str, token_file: str, out: str, concurrency: int) -> None:
    """A bare Engine.IO 4 / Socket.IO 5 client per connection: one greenlet that answers pings
    and records pushes. python-socketio's client costs several greenlets and far more CPU per
    connection, which on a small machine starves the server the bench is measuring."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import websocket
    from gevent.lock import Semaphore

    rows = [line.split() for line in Path(token_file).read_text().splitlines() if line]
    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    received: list[tuple[int, float]] = []
    state = {"ready": 0, "failed": 0, "lost": 0, "stopping": False}
    connecting = Semaphore(concurrency)

    def connect(token: str):
        ws = websocket.create_connection(ws_url, timeout=60)
        if not ws.recv().startswith("0{"):  # Engine.IO open
            raise ConnectionError("no Engine.IO handshake")
        ws.send("40" + json.dumps({"token": token}))
        answer = ws.recv()
        if not answer.startswith("40{"):  # Socket.IO CONNECT ack (44 = refused)
            raise ConnectionError(answer[:200])
        ws.settimeout(None)
        return ws

    def hold(token: str) -> None:
        try:
            with connecting:
                ws = connect(token)
        except Exception as exc:
            state["failed"] += 1
            state.setdefault("error", f"{type(exc).__name__}: {exc}")
            return
        state["ready"] += 1
        try:
            while True:
                frame = ws.recv()
                if frame == "2":
                    ws.send("3")
                elif frame.startswith('42["notification"'):
                    data = json.loads(frame[2:])[1]
                    received.append((data["data"]["seq"], time.time()))
                elif not frame or frame.startswith(("1", "41")):
                    break
        except Exception as exc:  # the connection dropped: counted below unless we are stopping
            state.setdefault("lost_reason", f"{type(exc).__name__}: {exc}")
        if not state["stopping"]:
            state["lost"] += 1

    holders = [gevent.spawn(hold, token) for _uid, token in rows]
    while state["ready"] + state["failed"] < len(rows):
        gevent.sleep(0.2)
    summary = {"ready": state["ready"], "failed": state["failed"], "error": state.get("error")}
    Path(out + ".ready").write_text(json.dumps(summary))
    stop = Path(out + ".stop")
    while not stop.exists():
        gevent.sleep(0.2)
    state["stopping"] = True
    Path(out).write_text(
        json.dumps({"received": received, "lost": state["lost"], "failed": state["failed"]})
    )
    del holders
    os._exit(0)  # closing thousands of sockets politely only slows the bench down


# --- the conductor ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _worker_pid(master: int, deadline: float) -> int:
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn worker did not start")


def _prepare_database(admin_url: str, name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _wait_http(url: str, proc: subprocess.Popen, deadline: float) -> None:
    import requests

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited during start-up")
        try:
            if requests.get(f"{url}/api/status", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--concurrency", type=int, default=100, help="connects in flight each")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds for the run")
    args = parser.parse_args()
    started = time.monotonic()
    deadline = started + args.deadline

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = args.connections + 500
    if hard < need:
        sys.exit(f"ulimit -n hard limit {hard} < {need}: lower --connections")

    from cryptography.fernet import Fernet

    admin_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    database_url = _prepare_database(admin_url, "jackpotx_bench_sockets")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        JWT_SECRET_KEY=secrets.token_urlsafe(48),
        JWT_ACCESS_TOKEN_EXPIRES="3600",  # noqa: S106 - a lifetime in seconds
        ENCRYPTION_KEY=Fernet.generate_key().decode(),
        AUDIT_CHAIN_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SOCKETIO_CHANNEL=f"jackpotx-bench-{port}",
        PUBLIC_URL=url,
        BIND=f"127.0.0.1:{port}",
        WEB_WORKERS="1",
        WORKER_CONNECTIONS=str(need),
        LOG_LEVEL="WARNING",
        ACCESS_LOG="/dev/null",
        RATELIMIT_ENABLED="false",
        PYTHONPATH=str(ROOT),
    )
    os.environ.update(env)

    from flask_jwt_extended import create_access_token
    from sqlalchemy import insert

    from app import create_app
    from app.core import notifications
    from app.core.db import atomic, on_commit
    from app.core.extensions import db
    from app.identity import passwords
    from app.identity.access import ensure_roles
    from app.identity.models import PLAYER, User

    app = create_app()
    work = Path(tempfile.mkdtemp(prefix="jx-bench-"))
    with app.app_context():
        db.create_all()
        with atomic():
            ensure_roles()
        hashed = passwords.hash_password("Bench-Passw0rd!")
        with atomic():
            db.session.execute(
                insert(User),
                [
                    {
                        "username": f"bench{i}",
                        "email": f"bench{i}@bench.test",
                        "password_hash": hashed,
                        "role_id": PLAYER,
                        "status": "active",
                        "currency": "EUR",
                    }
                    for i in range(args.connections)
                ],
            )
        users = [u for (u,) in db.session.execute(db.select(User.id).order_by(User.id))]
        with app.test_request_context():
            tokens = [(uid, create_access_token(identity=uid)) for uid in users]
    print(f"prepared {len(tokens)} players and tokens in {time.monotonic() - started:.1f}s")

    log = open(work / "gunicorn.log", "wb")  # noqa: SIM115 - lives as long as the server
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    procs: list[subprocess.Popen] = []
    try:
        _wait_http(url, server, deadline)
        worker = _worker_pid(server.pid, deadline)
        # Warm up: the first connection loads the Socket.IO manager and its Redis listener.
        import socketio as sio_mod

        warm = sio_mod.Client(reconnection=False)
        warm.connect(url, auth={"token": tokens[0][1]}, transports=["websocket"])
        warm.disconnect()
        time.sleep(1)
        base_rss = _rss_kb(worker)

        slices = [tokens[i :: args.clients] for i in range(args.clients)]
        outs = []
        for n, chunk in enumerate(slices):
            token_file = work / f"tokens-{n}.txt"
            token_file.write_text("\n".join(f"{uid} {tok}" for uid, tok in chunk))
            out = str(work / f"client-{n}.json")
            outs.append(out)
            procs.append(
                subprocess.Popen(  # noqa: S603 - this script as a client process
                    [
                        sys.executable,
                        __file__,
                        "--client",
                        url,
                        str(token_file),
                        out,
                        str(args.concurrency),
                    ],
                    cwd=ROOT,
                    env=env,
                )
            )
        t0 = time.monotonic()
        while not all(Path(o + ".ready").exists() for o in outs):
            if time.monotonic() > deadline:
                raise RuntimeError("clients did not finish connecting in time")
            if any(p.poll() not in (None, 0) for p in procs):
                raise RuntimeError("a client process died")
            time.sleep(0.5)
        ready = [json.loads(Path(o + ".ready").read_text()) for o in outs]
        connected = sum(r["ready"] for r in ready)
        failed = sum(r["failed"] for r in ready)
        print(f"connected {connected} (failed {failed}) in {time.monotonic() - t0:.1f}s")
        for r in ready:
            if r.get("error"):
                print(f"  first connect error: {r['error']}")
        time.sleep(2)
        rss = _rss_kb(worker)
        rss_per_conn = (rss - base_rss) / max(connected, 1)
        print(f"worker rss {base_rss} KB -> {rss} KB")

        # Drive committed changes and time their push.
        stamps: dict[int, float] = {}
        targets = [random.choice(users) for _ in range(args.events)]
        interval = 1.0 / args.rate
        with app.app_context():
            next_at = time.monotonic()
            for seq, uid in enumerate(targets):
                with atomic():
                    notifications.notify(uid, "bench", "Push", "latency probe", data={"seq": seq})
                    on_commit(lambda seq=seq: stamps.__setitem__(seq, time.time()))
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        time.sleep(3)
        for o in outs:
            Path(o + ".stop").write_text("stop")
        for p in procs:
            p.wait(timeout=max(5, deadline - time.monotonic()))
        results = [json.loads(Path(o).read_text()) for o in outs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    # on_commit callbacks run in order: the stamp follows the commit, before the emit.
    latencies = []
    seen: set[int] = set()
    for result in results:
        for seq, t_recv in result["received"]:
            if seq in stamps and seq not in seen:
                seen.add(seq)
                latencies.append((t_recv - stamps[seq]) * 1000)
    lost = sum(r["lost"] for r in results)
    dropped = (args.events - len(seen)) + failed + lost
    latencies.sort()
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0
    print(f"events sent={args.events} received={len(seen)} lost_connections={lost}")
    print(
        f"connections={connected} rss_kb_per_conn={rss_per_conn:.1f} "
        f"push_p50_ms={p50:.1f} push_p99_ms={p99:.1f} dropped={dropped}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
