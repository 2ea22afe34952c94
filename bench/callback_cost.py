"""What one seamless-wallet callback costs, independent of machine load.

    .venv/bin/python bench/callback_cost.py [--rounds 300] [--show-sql]

Creates its own database (``jackpotx_bench_cost``), seeds one funded player through the
services, then drives signed callbacks through the app in-process (Flask test client,
production profile, PostgreSQL + Redis, no HTTP server). Prints the SQL statements one bet, one
win and one replay (the same bet's bytes again) send to PostgreSQL (counted with SQLAlchemy's
``before_cursor_execute``; the commit is not a statement there) and, over ``--rounds`` rounds of
bet, win, replay, the interpreter CPU time per callback of each kind (``time.process_time``:
the app's own Python work, not the database's) and the wall time.

CPU per callback is what decides the throughput of a CPU-bound worker, and unlike
``bench/callbacks.py`` it barely moves when other processes load the machine.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import json
import os
import pstats
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench import callbacks as bench  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=300, help="bet + win rounds measured")
    p.add_argument("--show-sql", action="store_true", help="print each statement")
    p.add_argument("--cprofile", action="store_true", help="cProfile the measured rounds")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", bench.DEFAULT_PG))
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", bench.DEFAULT_REDIS))
    p.add_argument("--db-name", default="jackpotx_bench_cost")
    args = p.parse_args()
    ns = argparse.Namespace(redis=args.redis, log_level="WARNING", workers=1)
    db_url = bench.create_database(args.pg, args.db_name)
    try:
        env = bench.app_env(ns, db_url)
        secret, tokens, _ = bench.seed(env, 1)
        os.environ.update(env)
        from app import create_app
        from app.core.extensions import db

        app = create_app()
        statements: list[str] = []
        #: Statements of other threads: the after-commit queue's (``PLAY_AFTER_COMMIT``).
        after: list[str] = []
        request_thread = threading.get_ident()

        def record(_c: object, _cur: object, sql: str, *_a: object) -> None:
            mine = threading.get_ident() == request_thread
            (statements if mine else after).append(" ".join(sql.split())[:100])

        with app.app_context():
            sa.event.listen(db.engine, "before_cursor_execute", record)
        client = app.test_client()
        url = f"/api/provider-callback/{bench.PROVIDER}"
        common = {"session_token": tokens[0], "game_id": bench.GAME, "currency": bench.CURRENCY}

        def send(payload: dict) -> dict:
            body = json.dumps({**payload, **common}, separators=(",", ":")).encode()
            sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", "X-Signature": sig}
            answer = client.post(url, data=body, headers=headers).get_json()
            if answer.get("status") != "ok":
                raise SystemExit(f"callback refused: {answer}")
            return answer

        def bet(tag: str) -> dict:
            return {"action": "bet", "transaction_id": f"{tag}b", "round_id": tag, "amount": "1.00"}

        def win(tag: str, amount: str) -> dict:
            return {"action": "win", "transaction_id": f"{tag}w", "round_id": tag, "amount": amount}

        def settle(seen: list[str]) -> None:
            # Until the after-commit queue's thread has been quiet for 100 ms (at most 2 s).
            deadline = time.monotonic() + 2
            count = -1
            while count != len(seen) and time.monotonic() < deadline:
                count = len(seen)
                time.sleep(0.1)

        for i in range(30):  # warm the caches (statements, provider, game)
            send(bet(f"warm{i}"))
            send(win(f"warm{i}", "2.00"))
            send(bet(f"warm{i}"))
        counts = {}
        for kind, payload in (
            ("bet", bet("x")),
            ("win", win("x", "2.00")),
            ("replay", bet("x")),
        ):
            settle(after)
            statements.clear()
            after.clear()
            send(payload)
            counts[kind] = len(statements)
            print(f"{kind}: {len(statements)} SQL statements (+ commit)")
            if args.show_sql:
                for sql in statements:
                    print(f"    {sql}")
            settle(after)
            if after:
                print(f"  after commit, off the request: {len(after)} SQL statements (+ commit)")
                if args.show_sql:
                    for sql in after:
                        print(f"    {sql}")
        cpu = {"bet": 0.0, "win": 0.0, "replay": 0.0}
        database = dict.fromkeys(cpu, 0.0)
        profiler = cProfile.Profile() if args.cprofile else None
        if profiler is not None:
            profiler.enable()
        wall0 = time.perf_counter()
        for i in range(args.rounds):
            for kind, payload in (
                ("bet", bet(f"m{i}")),
                ("win", win(f"m{i}", "2.00" if i % 2 else "0")),
                ("replay", bet(f"m{i}")),
            ):
                d0 = bench.database_cpu()  # before the clock: reading /proc costs CPU too
                t0 = time.process_time()
                send(payload)
                cpu[kind] += time.process_time() - t0
                database[kind] += bench.database_cpu() - d0
        wall = time.perf_counter() - wall0
        if profiler is not None:
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(40)
        n = args.rounds
        load = os.getloadavg()[0]
        print(
            f"cpu_ms_per_bet={1000 * cpu['bet'] / n:.2f} "
            f"cpu_ms_per_win={1000 * cpu['win'] / n:.2f} "
            f"cpu_ms_per_replay={1000 * cpu['replay'] / n:.2f} "
            f"wall_ms_per_callback={1000 * wall / (3 * n):.2f} rounds={n} load1={load:.1f}"
        )
        print(
            f"statements_bet={counts['bet']} statements_win={counts['win']} "
            f"statements_replay={counts['replay']} "
            f"cpu_ms_per_callback={1000 * sum(cpu.values()) / (3 * n):.2f}"
        )
        print(  # clock ticks: meaningful over a few hundred rounds
            f"database_cpu_ms_per_bet={1000 * database['bet'] / n:.2f} "
            f"database_cpu_ms_per_win={1000 * database['win'] / n:.2f} "
            f"database_cpu_ms_per_replay={1000 * database['replay'] / n:.2f}"
        )
        from app.play import events

        events.drain(10.0)  # the after-commit queue's work, before its database is dropped
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        bench.drop_database(args.pg, args.db_name)


if __name__ == "__main__":
    main()
