"""Seamless-wallet bets: JackpotX against the floor, in the same run (issue 15).

One command (a few minutes with the defaults):

    .venv/bin/python bench/callbacks.py [--seconds 10]          # 100 players, one wallet each
    .venv/bin/python bench/callbacks.py --hot                   # every connection on ONE wallet
    .venv/bin/python bench/callbacks.py --profile /tmp/cb.txt   # + py-spy on JackpotX's worker
    .venv/bin/python bench/callbacks.py --workers 1,2           # + saturation at 1 and 2 workers

What it does:

1. Creates two PostgreSQL databases: ``jackpotx_bench`` (tables from the models; ``--players``
   funded players, a provider with a callback secret, a game and one game session per player,
   through the app's own services) and ``jackpotx_bench_floor`` (the floor's own tables, the
   same session tokens and balances).
2. Starts both under gunicorn with ``gunicorn.conf.py`` (the same gevent + WebSocket worker,
   ``--workers`` each): JackpotX in the production profile (PostgreSQL + Redis, limiter on),
   and ``bench/floor.py``: a bare Flask + psycopg2 endpoint doing the same signed bet (HMAC of
   the raw body, JSON, session lookup, claim, wallet lock, move, ledger row, answer).
3. For each phase, JackpotX then the floor, back to back: signed bets (a new transaction and
   round each, 1.00 EUR) over keep-alive connections from ``bench/loadgen.py`` (gevent, a
   child process whose CPU is measured and printed) for ``--seconds``:
   ``seq`` one connection (the per-bet time), ``c4`` 4 connections, ``sat``
   ``--concurrency`` connections (saturation). Then ``dup1`` and ``dup`` on JackpotX: 1 and 4
   connections, every bet resent at once with the same bytes (a provider retry): the replay's
   p50 against the first-time bet's (at one connection each one's own cost; at four the wait
   for the busy worker is in both), and every replay must answer what the bet answered.
4. Checks JackpotX's books (``wallet.reconcile()``), then runs the raw SQL of the ledger's
   shape straight through psycopg2 threads at ``--concurrency`` (the pgbench-style baseline).
5. Prints a same-run table (bets/s, p50/p99, sequential ms, server CPU per bet, JackpotX /
   floor ratios) and, as its last line:
   ``vs_floor=<n> jackpotx_bets_per_s=<n> floor_bets_per_s=<n> jackpotx_p99_4_ms=<n>
   floor_p99_4_ms=<n> jackpotx_seq_ms=<n> floor_seq_ms=<n> replay_vs_bet=<n> replay_vs_bet_1=<n>
   raw_tx_per_s=<n>``

``--workers 1,2`` then runs a scale-out phase: saturation at each worker count against
JackpotX's callbacks / JSON API group (``wsgi_api:app``: no Socket.IO, plain gevent workers)
and the floor, and prints one ``scale_workers=<n> ...`` line per count.

Exit status 1 if a bet was refused, a replay answered differently or the books do not
reconcile. ``--profile FILE`` records JackpotX's worker with py-spy (``pip install py-spy``)
during its saturation phase and prints the functions with the most samples.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from bench import floor as floor_mod  # noqa: E402

PROVIDER = "benchstudio"
GAME = "bench-dice"
CURRENCY = "EUR"
STAKE = "1.00"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    p.add_argument("--players", type=int, default=100, help="players (one wallet each)")
    p.add_argument("--concurrency", type=int, default=64, help="connections at saturation")
    p.add_argument("--hot", action="store_true", help="every connection on one wallet")
    p.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG),
        help="PostgreSQL server (maintenance database URL)",
    )
    p.add_argument("--db-name", default="jackpotx_bench")
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    p.add_argument(
        "--workers",
        default="1",
        help="gunicorn worker processes; a list (1,2) adds a scale-out phase: JackpotX's "
        "callbacks group (wsgi_api:app, plain gevent workers) and the floor at each count",
    )
    p.add_argument("--log-level", default="WARNING", help="app LOG_LEVEL during the run")
    p.add_argument("--profile", default=None, help="py-spy raw (folded) output file")
    p.add_argument(
        "--profile-idle", action="store_true", help="py-spy also samples waits (wall time)"
    )
    p.add_argument(
        "--profile-native",
        action="store_true",
        help="py-spy also records C frames (psycopg2, libpq; pauses the worker while sampling)",
    )
    p.add_argument("--keep-db", action="store_true", help="do not drop the database afterwards")
    p.add_argument(
        "--engagement",
        action="store_true",
        help="an active jackpot pool and a running free tournament hear every bet (issue 9)",
    )
    args = p.parse_args()
    if args.hot:
        args.players = 1
    args.scale = [int(n) for n in str(args.workers).split(",") if n.strip()]
    args.workers = args.scale[0]
    if len(args.scale) == 1:
        args.scale = []
    return args


# --- database and seed -----------------------------------------------------------------------


def create_database(admin_url: str, name: str) -> str:
    from app.core.config import normalize_database_url

    admin = sa.create_engine(normalize_database_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name)
    admin.dispose()
    return url.render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    from app.core.config import normalize_database_url

    admin = sa.create_engine(normalize_database_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def app_env(args: argparse.Namespace, db_url: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return {
        "ENV": "production",
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "AUDIT_CHAIN_KEY": secrets.token_urlsafe(48),
        "LOG_LEVEL": args.log_level,
        # The limiter stays on (its Redis round trip is part of the cost), above bench volume.
        "RATE_LIMIT_CALLBACK": "10000000 per minute",
        "ACCESS_LOG": "/dev/null",
        "WEB_WORKERS": str(args.workers),
        "GUNICORN_TIMEOUT": "120",
    }


def seed(
    env: dict[str, str], players: int, engagement: bool = False
) -> tuple[str, list[str], list[int]]:
    """Tables, provider, game, funded players with open sessions: (secret, tokens, wallet ids)."""
    from app import create_app
    from app.core.db import atomic
    from app.core.extensions import db
    from app.identity import access, users
    from app.identity.models import PLAYER
    from app.play import games
    from app.wallet import ledger as wallet
    from app.wallet.models import Wallet

    os.environ.update(env)
    app = create_app({"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 8, "ARGON2_PARALLELISM": 1})
    secret = secrets.token_urlsafe(32)
    tokens, wallets = [], []
    with app.app_context():
        db.create_all()
        with atomic():
            access.ensure_roles()
            games.create_provider(code=PROVIDER, name="Bench Studio", secret=secret)
            games.import_games(
                PROVIDER, [{"external_id": GAME, "name": "Bench", "category": "dice"}]
            )
        game_id = db.session.execute(
            sa.text("SELECT id FROM games WHERE external_id = :g"), {"g": GAME}
        ).scalar_one()
        if engagement:
            seed_engagement()
        for i in range(players):
            with atomic():
                user = users.create_user(
                    username=f"bench{i}",
                    email=f"bench{i}@bench.test",
                    password="Bench-Passw0rd!",  # noqa: S106 - throwaway bench accounts
                    role_id=PLAYER,
                )
                wallet.post(
                    user.id,
                    CURRENCY,
                    "deposit",
                    cash_delta=100_000_000_00,
                    source="bench",
                    idempotency_key=f"fund-{i}",
                )
                launched = games.launch(user, game_id, currency=CURRENCY)
            tokens.append(launched.session_token)
            wallets.append(db.session.scalar(sa.select(Wallet.id).where(Wallet.user_id == user.id)))
        db.session.remove()
        db.engine.dispose()
    return secret, tokens, wallets


def seed_engagement() -> None:
    """One jackpot pool (1 %, no random hit) and one running free tournament in EUR."""
    from datetime import timedelta

    from app.core.base import utcnow
    from app.core.db import atomic
    from app.prizes import jackpots, tournaments

    with atomic():
        jackpots.create_pool(
            {
                "name": "Bench",
                "currency": CURRENCY,
                "seed_amount": "100",
                "contribution_percent": "1",
            },
            actor=None,
        )
        tournaments.create(
            {
                "name": "Bench race",
                "currency": CURRENCY,
                "starts_at": utcnow() - timedelta(minutes=1),
                "ends_at": utcnow() + timedelta(days=1),
                "prizes": ["10"],
            },
            actor=None,
        )


def reconcile(env: dict[str, str]) -> list[str]:
    from app import create_app
    from app.core.extensions import db
    from app.wallet import ledger as wallet

    os.environ.update(env)
    app = create_app()
    with app.app_context():
        problems = [str(p) for p in wallet.reconcile()]
        db.session.remove()
        db.engine.dispose()
    return problems


# --- server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, app: str = "wsgi:app") -> subprocess.Popen:
    server_env = {**os.environ, **env, "BIND": f"127.0.0.1:{port}"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(  # noqa: S603 - our own gunicorn with our own config
        [gunicorn, "-c", "gunicorn.conf.py", app],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited:\n" + proc.stderr.read().decode()[-3000:])
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("gunicorn did not become healthy in 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(  # noqa: S603
        ["pgrep", "-P", str(master)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [int(x) for x in out.split()]


# --- HTTP phases (bench/loadgen.py in a child process) ---------------------------------------


@dataclass
class Target:
    """A server under test: JackpotX or the floor."""

    name: str
    port: int
    path: str
    proc: subprocess.Popen
    results: dict[str, dict] = field(default_factory=dict)


def worker_cpu(master: int) -> float:
    """CPU seconds (user + system) the server's worker processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in worker_pids(master):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def database_cpu() -> float:
    """CPU seconds (user + system) every PostgreSQL process of this machine has used so far
    (its backends, WAL writer, checkpointer: the server shares the machine's cores with the
    worker, so what a bet costs the database is part of what it costs). A backend that exited
    is counted in its parent's (the postmaster's) children's time."""
    return sum(own + children for _kind, own, children in database_processes().values())


def connections_opened(admin_url: str, database: str) -> int:
    """Sessions ever opened on ``database`` (``pg_stat_database.sessions``; PostgreSQL 14+):
    a pool that closes and reopens connections under load pays a backend start, and its
    prepared statements planned again, each time."""
    conn = psycopg2.connect(admin_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,))
            row = cur.fetchone()
        return int(row[0] or 0) if row else 0
    finally:
        conn.close()


def database_processes() -> dict[int, tuple[str, float, float]]:
    """Every PostgreSQL process: pid -> (kind, its CPU seconds, its reaped children's)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            head, _, rest = (proc / "stat").read_text().rpartition(")")
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if not head.partition("(")[2].startswith("postgres"):
            continue
        if not title.startswith("postgres: "):
            kind = "postmaster"
        elif "(" in title:
            kind = "connections"
        elif title.startswith("postgres: autovacuum"):
            kind = "autovacuum"
        else:
            kind = " ".join(title.split()[1:3])
        fields = rest.split()
        own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        out[int(proc.name)] = (kind, own / ticks, children / ticks)
    return out


def database_cpu_by_process(
    before: dict[int, tuple[str, float, float]], after: dict[int, tuple[str, float, float]]
) -> dict[str, float]:
    """The database's CPU between two ``database_processes`` snapshots by kind of process.
    Processes that exited in between (``exited``: connections closed) count their whole life in
    their parent's children's time, less what they had used before the first snapshot."""
    out: dict[str, float] = {}
    for pid, (kind, own, children) in after.items():
        was = before.get(pid, (kind, 0.0, 0.0))
        out[kind] = out.get(kind, 0.0) + own - was[1]
        out["exited"] = out.get("exited", 0.0) + children - was[2]
    for pid, (_kind, own, children) in before.items():
        if pid not in after:
            out["exited"] = out.get("exited", 0.0) - own - children
    return out


def load(
    args: argparse.Namespace,
    target: Target,
    secret: str,
    tokens: list[str],
    *,
    phase: str,
    connections: int,
    mode: str = "bet",
) -> dict:
    """One phase against one server: the load generator's result plus the server's CPU."""
    job = {
        "host": "127.0.0.1",
        "port": target.port,
        "path": target.path,
        "secret": secret,
        "tokens": tokens,
        "connections": connections,
        "seconds": args.seconds,
        "mode": mode,
        "prefix": f"{target.name}-{phase}",
        "stake": STAKE,
        "game": GAME,
        "currency": CURRENCY,
    }
    database = f"{args.db_name}_floor" if target.name == "floor" else args.db_name
    opened0 = connections_opened(args.pg, database)
    cpu0, db0 = worker_cpu(target.proc.pid), database_processes()
    out = subprocess.run(  # noqa: S603 - our own load generator
        [sys.executable, str(ROOT / "bench" / "loadgen.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"load generator failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout)
    result["server_cpu_s"] = worker_cpu(target.proc.pid) - cpu0
    db1 = database_processes()
    result["db_by_process"] = database_cpu_by_process(db0, db1)
    result["db_opened"] = connections_opened(args.pg, database) - opened0
    result["db_closed"] = sum(
        1 for pid, p in db0.items() if p[0] == "connections" and pid not in db1
    )
    result["db_cpu_s"] = sum(result["db_by_process"].values())
    lat = sorted(result["latencies"])
    result["n"] = len(lat)
    result["per_s"] = len(lat) / result["elapsed"]
    result["p50"], result["p99"] = percentile(lat, 0.5), percentile(lat, 0.99)
    result["mean"] = 1000 * statistics.fmean(lat) if lat else 0.0
    dups = sorted(result["dup_latencies"])
    result["dup_p50"] = percentile(dups, 0.5)
    target.results[phase] = result
    print(
        f"  {target.name:8} {phase:4} {connections:2} conn: {result['per_s']:7.1f} bets/s "
        f"p50 {result['p50']:7.1f} ms p99 {result['p99']:7.1f} ms; server CPU "
        f"{1000 * result['server_cpu_s'] / max(result['n'], 1):5.2f} ms/bet, database "
        f"{1000 * result['db_cpu_s'] / max(result['n'], 1):5.2f} ms/bet; client CPU "
        f"{100 * result['client_cpu_s'] / result['elapsed']:3.0f}% of a core; {result['verdicts']}",
        flush=True,
    )
    return result


def percentile(sorted_values: list[float], q: float) -> float:
    """In milliseconds; 0 when there is nothing."""
    if not sorted_values:
        return 0.0
    if q == 0.5:
        return 1000 * statistics.median(sorted_values)
    return 1000 * sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


# --- raw SQL phase ---------------------------------------------------------------------------


def raw_phase(args, db_url: str, wallet_ids: list[int]) -> tuple[int, float]:
    dsn = db_url.replace("postgresql+psycopg2://", "postgresql://")
    counts = [0] * args.concurrency
    start_gate = threading.Barrier(args.concurrency + 1)
    stop_at = [0.0]

    def client(worker: int) -> None:
        conn = psycopg2.connect(dsn)
        cur = conn.cursor()
        mine = wallet_ids[worker % len(wallet_ids) :: args.concurrency] or [
            wallet_ids[worker % len(wallet_ids)]
        ]
        n = 0
        start_gate.wait()
        while time.monotonic() < stop_at[0]:
            wid = mine[n % len(mine)]
            n += 1
            amount = -100 if n % 2 else 200 * (n % 4 == 0)
            cur.execute(
                "SELECT id, user_id, balance, bonus_balance FROM wallets WHERE id = %s FOR UPDATE",
                (wid,),
            )
            _, user_id, balance, bonus = cur.fetchone()
            cur.execute(
                "INSERT INTO ledger_transactions (wallet_id, user_id, currency, type, source,"
                " idempotency_key, reference_type, reference_id, cash_delta, bonus_delta,"
                " held_delta, balance_after, bonus_balance_after, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, 0, %s, %s, now())"
                " ON CONFLICT (source, idempotency_key) DO NOTHING RETURNING id",
                (
                    wid,
                    user_id,
                    CURRENCY,
                    "bet" if amount < 0 else "win",
                    "raw:bench",
                    f"raw-{worker}-{n}",
                    "provider_transaction",
                    str(n),
                    amount,
                    balance + amount,
                    bonus,
                ),
            )
            tx_id = cur.fetchone()[0]
            cur.execute(
                "UPDATE wallets SET balance = balance + %s, updated_at = now() WHERE id = %s",
                (amount, wid),
            )
            cur.execute(
                "INSERT INTO ledger_entries (transaction_id, wallet_id, account, currency, amount)"
                " VALUES (%s, %s, 'cash', %s, %s), (%s, NULL, 'house:games', %s, %s)",
                (tx_id, wid, CURRENCY, amount, tx_id, CURRENCY, -amount),
            )
            conn.commit()
            counts[worker] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + args.seconds
    started = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join()
    return sum(counts), time.monotonic() - started


# --- profile summary -------------------------------------------------------------------------


def summarize_profile(path: str, top: int = 25) -> None:
    """Inclusive samples per function (folded stacks from ``py-spy record --format raw``)."""
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += n
        leaf[frames[-1]] += n
    print(f"py-spy: {total} samples; top inclusive (share of worker time):")
    for frame, n in inclusive.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {frame}")
    print("top self:")
    for frame, n in leaf.most_common(15):
        print(f"  {100 * n / total:5.1f}%  {frame}")


# --- main ------------------------------------------------------------------------------------


def start_profiler(args: argparse.Namespace, server: subprocess.Popen) -> subprocess.Popen:
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(  # noqa: S603
        [
            py_spy,
            "record",
            "--format",
            "raw",
            "--output",
            args.profile,
            "--duration",
            str(int(args.seconds)),
            "--rate",
            "200",
            *(["--native"] if args.profile_native else ["--nonblocking"]),
            "--pid",
            str(worker_pids(server.pid)[0]),
            *(["--idle"] if args.profile_idle else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def report(args: argparse.Namespace, jx: Target, floor: Target, raw_per_s: float) -> str:
    """The same-run table, and the one-line summary."""
    j, f = jx.results, floor.results
    c = args.concurrency

    def cpu_ms(r: dict) -> float:
        return 1000 * r["server_cpu_s"] / max(r["n"], 1)

    def db_ms(r: dict) -> float:
        return 1000 * r["db_cpu_s"] / max(r["n"], 1)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    rows = [
        (f"bets/s, {c} connections", f"{j['sat']['per_s']:.0f}", f"{f['sat']['per_s']:.0f}",
         ratio(j["sat"]["per_s"], f["sat"]["per_s"])),
        (f"p50 / p99 ms, {c} connections", f"{j['sat']['p50']:.0f} / {j['sat']['p99']:.0f}",
         f"{f['sat']['p50']:.0f} / {f['sat']['p99']:.0f}", ""),
        ("bets/s, 4 connections", f"{j['c4']['per_s']:.0f}", f"{f['c4']['per_s']:.0f}",
         ratio(j["c4"]["per_s"], f["c4"]["per_s"])),
        ("p50 / p99 ms, 4 connections", f"{j['c4']['p50']:.1f} / {j['c4']['p99']:.1f}",
         f"{f['c4']['p50']:.1f} / {f['c4']['p99']:.1f}", ""),
        ("sequential ms per bet (mean)", f"{j['seq']['mean']:.1f}", f"{f['seq']['mean']:.1f}",
         ratio(j["seq"]["mean"], f["seq"]["mean"])),
        (f"server CPU ms per bet, {c} connections", f"{cpu_ms(j['sat']):.2f}",
         f"{cpu_ms(f['sat']):.2f}", ratio(cpu_ms(j["sat"]), cpu_ms(f["sat"]))),
        (f"database CPU ms per bet, {c} connections", f"{db_ms(j['sat']):.2f}",
         f"{db_ms(f['sat']):.2f}", ratio(db_ms(j["sat"]), db_ms(f["sat"]))),
        ("replay p50 / first bet p50 ms (4 conn)",
         f"{j['dup']['dup_p50']:.1f} / {j['dup']['p50']:.1f}", "",
         ratio(j["dup"]["dup_p50"], j["dup"]["p50"])),
        ("replay p50 / first bet p50 ms (1 conn)",
         f"{j['dup1']['dup_p50']:.1f} / {j['dup1']['p50']:.1f}", "",
         ratio(j["dup1"]["dup_p50"], j["dup1"]["p50"])),
    ]  # fmt: skip
    print(f"\n{'figure (same run)':42} {'JackpotX':>15} {'floor':>15} {'ratio':>6}")
    for name, a, b, r in rows:
        print(f"{name:42} {a:>15} {b:>15} {r:>6}")
    busiest = max(r["client_cpu_s"] / r["elapsed"] for r in (*j.values(), *f.values()))
    print(f"{'raw SQL tx/s, ' + str(c) + ' clients (psycopg2)':42} {raw_per_s:>15.0f}")
    print(f"load generator: at most {100 * busiest:.0f}% of one core in any phase")
    for who, r in (("JackpotX", j["sat"]), ("floor", f["sat"])):
        parts = sorted(r["db_by_process"].items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{kind} {1000 * v / max(r['n'], 1):.2f}" for kind, v in parts if v > 0)
        print(
            f"database CPU ms per bet by process, {who}, {c} connections: {shown}; "
            f"connections opened during the phase: {r['db_opened']}, closed: {r['db_closed']}"
        )
    return (
        f"vs_floor={j['sat']['per_s'] / f['sat']['per_s']:.2f} "
        f"jackpotx_bets_per_s={j['sat']['per_s']:.0f} floor_bets_per_s={f['sat']['per_s']:.0f} "
        f"jackpotx_p99_4_ms={j['c4']['p99']:.1f} floor_p99_4_ms={f['c4']['p99']:.1f} "
        f"jackpotx_seq_ms={j['seq']['mean']:.1f} floor_seq_ms={f['seq']['mean']:.1f} "
        f"replay_vs_bet={j['dup']['dup_p50'] / j['dup']['p50']:.2f} "
        f"replay_vs_bet_1={j['dup1']['dup_p50'] / j['dup1']['p50']:.2f} "
        f"raw_tx_per_s={raw_per_s:.0f} "
        f"jackpotx_db_ms={db_ms(j['sat']):.2f} floor_db_ms={db_ms(f['sat']):.2f}"
    )


def scale_out(
    args: argparse.Namespace,
    env: dict[str, str],
    floor_env: dict[str, str],
    secret: str,
    tokens: list[str],
) -> list[tuple[int, dict, dict]]:
    """Saturation with 1, 2, ... workers: JackpotX's callbacks / JSON API group
    (``wsgi_api:app``, no Socket.IO, plain gevent workers) then the floor, back to back."""
    out = []
    for n in args.scale:
        jx_env = {**env, "WEB_WORKERS": str(n), "SOCKETIO_SERVER": "false"}
        fl_env = {**floor_env, "WEB_WORKERS": str(n), "SOCKETIO_SERVER": "false"}
        results = []
        for name, target_env, app, path in (
            ("jackpotx", jx_env, "wsgi_api:app", f"/api/provider-callback/{PROVIDER}"),
            ("floor", fl_env, "bench.floor:app", "/bet"),
        ):
            port = free_port()
            target = Target(name, port, path, start_server(target_env, port, app))
            try:
                results.append(
                    load(
                        args,
                        target,
                        secret,
                        tokens,
                        phase=f"w{n}",
                        connections=args.concurrency,
                    )
                )
            finally:
                stop_server(target.proc)
        print(
            f"scale-out, {n} worker(s), {args.concurrency} connections: JackpotX (wsgi_api) "
            f"{results[0]['per_s']:.0f} bets/s, floor {results[1]['per_s']:.0f} bets/s"
        )
        out.append((n, results[0], results[1]))
    return out


def main() -> None:
    args = parse_args()
    if args.profile and not Path(sys.executable).with_name("py-spy").exists():
        raise SystemExit(f"--profile needs py-spy: {sys.executable} -m pip install py-spy")
    mode = "hot (one wallet)" if args.hot else f"{args.players} wallets"
    print(
        f"bench: {mode}, {args.concurrency} connections at saturation, {args.seconds:.0f} s per "
        f"phase, {args.workers} worker(s); load {os.getloadavg()[0]:.1f}"
    )
    floor_db = f"{args.db_name}_floor"
    db_url = create_database(args.pg, args.db_name)
    floor_url = create_database(args.pg, floor_db)
    try:
        env = app_env(args, db_url)
        t0 = time.monotonic()
        secret, tokens, wallet_ids = seed(env, args.players, args.engagement)
        floor_dsn = floor_url.replace("postgresql+psycopg2://", "postgresql://")
        floor_mod.create_schema(floor_dsn, tokens, 100_000_000_00, CURRENCY)
        print(f"seeded {len(tokens)} players (JackpotX and floor) in {time.monotonic() - t0:.1f} s")
        floor_env = {**env, "FLOOR_DSN": floor_dsn, "FLOOR_SECRET": secret}
        jx_port, floor_port = free_port(), free_port()
        jx = Target(
            "jackpotx", jx_port, f"/api/provider-callback/{PROVIDER}", start_server(env, jx_port)
        )
        try:
            floor = Target(
                "floor", floor_port, "/bet", start_server(floor_env, floor_port, "bench.floor:app")
            )
            try:
                # Back to back per phase, so both see the same machine.
                for phase, connections in (("seq", 1), ("c4", 4), ("sat", args.concurrency)):
                    for target in (jx, floor):
                        profiler = None
                        if args.profile and target is jx and phase == "sat":
                            profiler = start_profiler(args, jx.proc)
                        load(args, target, secret, tokens, phase=phase, connections=connections)
                        if profiler is not None:
                            profiler.wait(60)
                load(args, jx, secret, tokens, phase="dup1", connections=1, mode="dup")
                load(args, jx, secret, tokens, phase="dup", connections=4, mode="dup")
            finally:
                stop_server(floor.proc)
        finally:
            stop_server(jx.proc)
        scale = scale_out(args, env, floor_env, secret, tokens) if args.scale else []
        problems = reconcile(env)
        mismatched = jx.results["dup"]["mismatched"] + jx.results["dup1"]["mismatched"]
        print(f"duplicates answered differently: {mismatched}")
        print(f"reconcile: {'clean' if not problems else f'{len(problems)} PROBLEMS'}")
        for problem in problems[:10]:
            print(f"  {problem}")
        raw_count, raw_elapsed = raw_phase(args, db_url, wallet_ids)
        raw_per_s = raw_count / raw_elapsed
        if args.profile:
            summarize_profile(args.profile)
        print(report(args, jx, floor, raw_per_s))
        for n, j_res, f_res in scale:
            print(
                f"scale_workers={n} jackpotx_api_bets_per_s={j_res['per_s']:.0f} "
                f"floor_bets_per_s={f_res['per_s']:.0f} "
                f"vs_floor={j_res['per_s'] / f_res['per_s']:.2f} "
                f"jackpotx_api_p99_ms={j_res['p99']:.0f}"
            )
        refused = sum(
            n
            for r in (*jx.results.values(), *floor.results.values())
            for verdict, n in r["verdicts"].items()
            if not verdict.startswith("ok")
        )
        if problems or mismatched or refused:
            print(f"FAILED: {refused} refused bets")
            sys.exit(1)
    finally:
        if not args.keep_db:
            drop_database(args.pg, args.db_name)
            drop_database(args.pg, floor_db)


if __name__ == "__main__":
    main()
