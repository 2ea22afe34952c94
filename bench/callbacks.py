"""Seamless-wallet callback throughput: the real stack over HTTP vs. the bare SQL it must run.

One command:

    .venv/bin/python bench/callbacks.py --seconds 20            # N players, one wallet each
    .venv/bin/python bench/callbacks.py --seconds 20 --hot      # 64 clients on ONE wallet

What it does:

1. Creates its own PostgreSQL database (``jackpotx_bench``), creates the tables from the models,
   seeds ``--players`` funded players, a provider with a callback secret, a game, and one game
   session per player (through the same services the app uses).
2. Starts the app under gunicorn + GeventWebSocketWorker (``gunicorn.conf.py``, production
   profile, PostgreSQL + Redis) on a free loopback port.
3. Drives ``--concurrency`` client threads (each with its own keep-alive ``requests`` session)
   for ``--seconds``: every round is a signed ``bet`` then a signed ``win`` (0 or 2x), 10 % of the
   requests are sent twice (a provider retry: same bytes, must answer the same and move nothing),
   2 % of the rounds are rolled back instead of won. Latency is measured per request.
4. Checks the books: every wallet's ledger sum equals its balance (``wallet.reconcile()``).
5. Runs the same SQL transaction shape straight through psycopg2 at the same concurrency:
   ``SELECT ... FOR UPDATE`` the wallet, insert the ledger transaction (``ON CONFLICT DO
   NOTHING RETURNING id``), update the balance, insert the two ledger entries, commit.
6. Prints, as its last line:
   ``callbacks_per_s=<n> p50_ms=<n> p99_ms=<n> raw_tx_per_s=<n> ratio=<callbacks/raw>``

``--profile FILE`` records the gunicorn worker with py-spy (``pip install py-spy``) during the
HTTP phase and prints the functions with the most samples.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg2  # noqa: E402
import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

PROVIDER = "benchstudio"
GAME = "bench-dice"
CURRENCY = "EUR"
STAKE = "1.00"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    p.add_argument("--players", type=int, default=200, help="players (one wallet each)")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    p.add_argument("--hot", action="store_true", help="64 concurrent clients on one wallet")
    p.add_argument("--duplicates", type=float, default=0.10, help="share of requests resent")
    p.add_argument("--rollbacks", type=float, default=0.02, help="share of rounds rolled back")
    p.add_argument(
        "--pg",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG),
        help="PostgreSQL server (maintenance database URL)",
    )
    p.add_argument("--db-name", default="jackpotx_bench")
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    p.add_argument("--workers", type=int, default=1, help="gunicorn worker processes")
    p.add_argument("--log-level", default="WARNING", help="app LOG_LEVEL during the run")
    p.add_argument("--profile", default=None, help="py-spy raw (folded) output file")
    p.add_argument(
        "--profile-idle", action="store_true", help="py-spy also samples waits (wall time)"
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
        args.concurrency = 64
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
        game_id = db.session.execute(sa.text("SELECT id FROM games")).scalar_one()
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


def start_server(env: dict[str, str], port: int) -> subprocess.Popen:
    server_env = {**os.environ, **env, "BIND": f"127.0.0.1:{port}"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(  # noqa: S603 - our own gunicorn with our own config
        [gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"],
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


# --- HTTP phase ------------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.verdicts: Counter[str] = Counter()
        self.mismatched_duplicates = 0

    def add(self, latencies: list[float], verdicts: Counter[str], mismatched: int) -> None:
        with self.lock:
            self.latencies.extend(latencies)
            self.verdicts.update(verdicts)
            self.mismatched_duplicates += mismatched


def http_phase(args, port: int, secret: str, tokens: list[str]) -> tuple[Stats, float]:
    url = f"http://127.0.0.1:{port}/api/provider-callback/{PROVIDER}"
    stats = Stats()
    start_gate = threading.Barrier(args.concurrency + 1)
    stop_at = [0.0]

    def client(worker: int) -> None:
        rng = random.Random(worker)
        session = requests.Session()
        mine = tokens[worker % len(tokens) :: args.concurrency] or [tokens[worker % len(tokens)]]
        latencies: list[float] = []
        verdicts: Counter[str] = Counter()
        mismatched = 0
        n = 0

        def send(payload: dict) -> dict:
            nonlocal mismatched
            body = json.dumps(payload, separators=(",", ":")).encode()
            sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", "X-Signature": sig}
            t0 = time.perf_counter()
            answer = session.post(url, data=body, headers=headers, timeout=30).json()
            latencies.append(time.perf_counter() - t0)
            verdicts[answer.get("code") or answer.get("status")] += 1
            if rng.random() < args.duplicates:
                t0 = time.perf_counter()
                again = session.post(url, data=body, headers=headers, timeout=30).json()
                latencies.append(time.perf_counter() - t0)
                verdicts[(again.get("code") or again.get("status")) + "(dup)"] += 1
                if again.get("transaction_id") != answer.get("transaction_id"):
                    mismatched += 1
            return answer

        start_gate.wait()
        while time.monotonic() < stop_at[0]:
            token = mine[n % len(mine)]
            n += 1
            rid = f"w{worker}-r{n}"
            common = {"session_token": token, "game_id": GAME, "currency": CURRENCY}
            send(
                {
                    "action": "bet",
                    "transaction_id": f"{rid}-b",
                    "round_id": rid,
                    "amount": STAKE,
                    **common,
                }
            )
            if rng.random() < args.rollbacks:
                send(
                    {
                        "action": "rollback",
                        "transaction_id": f"{rid}-x",
                        "round_id": rid,
                        "reference_transaction_id": f"{rid}-b",
                        **common,
                    }
                )
            else:
                win = "2.00" if rng.random() < 0.49 else "0"
                send(
                    {
                        "action": "win",
                        "transaction_id": f"{rid}-w",
                        "round_id": rid,
                        "amount": win,
                        **common,
                    }
                )
        stats.add(latencies, verdicts, mismatched)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + args.seconds
    started = time.monotonic()
    start_gate.wait()
    for t in threads:
        t.join()
    return stats, time.monotonic() - started


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


def main() -> None:
    args = parse_args()
    if args.profile and not Path(sys.executable).with_name("py-spy").exists():
        raise SystemExit(f"--profile needs py-spy: {sys.executable} -m pip install py-spy")
    mode = "hot (one wallet)" if args.hot else f"{args.players} wallets"
    print(f"bench: {mode}, {args.concurrency} concurrent clients, {args.seconds:.0f} s per phase")
    db_url = create_database(args.pg, args.db_name)
    try:
        env = app_env(args, db_url)
        t0 = time.monotonic()
        secret, tokens, wallet_ids = seed(env, args.players, args.engagement)
        print(f"seeded {len(tokens)} players in {time.monotonic() - t0:.1f} s")
        port = free_port()
        server = start_server(env, port)
        profiler = None
        try:
            if args.profile:
                pids = worker_pids(server.pid)
                py_spy = str(Path(sys.executable).with_name("py-spy"))
                profiler = subprocess.Popen(  # noqa: S603
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
                        "--nonblocking",
                        "--pid",
                        str(pids[0]),
                        *(["--idle"] if args.profile_idle else []),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            stats, elapsed = http_phase(args, port, secret, tokens)
            if profiler is not None:
                profiler.wait(60)
        finally:
            stop_server(server)
        problems = reconcile(env)
        lat = sorted(stats.latencies)
        n = len(lat)
        callbacks_per_s = n / elapsed
        p50 = statistics.median(lat) * 1000 if lat else 0.0
        p99 = lat[min(n - 1, int(n * 0.99))] * 1000 if lat else 0.0
        print(f"http: {n} callbacks in {elapsed:.1f} s; answers {dict(stats.verdicts)}")
        print(f"duplicates answered differently: {stats.mismatched_duplicates}")
        print(f"reconcile: {'clean' if not problems else f'{len(problems)} PROBLEMS'}")
        for problem in problems[:10]:
            print(f"  {problem}")
        raw_count, raw_elapsed = raw_phase(args, db_url, wallet_ids)
        raw_per_s = raw_count / raw_elapsed
        print(f"raw: {raw_count} transactions in {raw_elapsed:.1f} s")
        if args.profile:
            summarize_profile(args.profile)
        print(
            f"callbacks_per_s={callbacks_per_s:.0f} p50_ms={p50:.1f} p99_ms={p99:.1f} "
            f"raw_tx_per_s={raw_per_s:.0f} ratio={callbacks_per_s / raw_per_s:.2f}"
        )
        if problems or stats.mismatched_duplicates:
            sys.exit(1)
    finally:
        if not args.keep_db:
            drop_database(args.pg, args.db_name)


if __name__ == "__main__":
    main()
