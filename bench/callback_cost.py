"""What one seamless-wallet callback costs, independent of machine load.

    .venv/bin/python bench/callback_cost.py [--rounds 300] [--show-sql]

Creates its own database (``jackpotx_bench_cost``), seeds one funded player through the
services, then drives signed bet + win callbacks through the app in-process (Flask test client,
production profile, PostgreSQL + Redis, no HTTP server). Prints the SQL statements one bet and
one win send to PostgreSQL and, over ``--rounds`` rounds, the interpreter CPU time per callback
(``time.process_time``: the app's own Python work, not the database's) and the wall time.

CPU per callback is what decides the throughput of a CPU-bound worker, and unlike
``bench/callbacks.py`` it barely moves when other processes load the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
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
        with app.app_context():
            sa.event.listen(
                db.engine,
                "before_cursor_execute",
                lambda _c, _cur, sql, *_a: statements.append(" ".join(sql.split())[:100]),
            )
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

        def round_(tag: str, win: str) -> None:
            send({"action": "bet", "transaction_id": f"{tag}b", "round_id": tag, "amount": "1.00"})
            send({"action": "win", "transaction_id": f"{tag}w", "round_id": tag, "amount": win})

        for i in range(30):  # warm the caches (statements, provider, game)
            round_(f"warm{i}", "2.00")
        for action, amount in (("bet", "1.00"), ("win", "2.00")):
            statements.clear()
            send(
                {
                    "action": action,
                    "transaction_id": f"x{action}",
                    "round_id": "x",
                    "amount": amount,
                }
            )
            print(f"{action}: {len(statements)} SQL statements")
            if args.show_sql:
                for sql in statements:
                    print(f"    {sql}")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(args.rounds):
            round_(f"m{i}", "2.00" if i % 2 else "0")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        n = 2 * args.rounds
        load = os.getloadavg()[0]
        print(
            f"cpu_ms_per_callback={1000 * cpu / n:.2f} wall_ms_per_callback={1000 * wall / n:.2f} "
            f"callbacks={n} load1={load:.1f}"
        )
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        bench.drop_database(args.pg, args.db_name)


if __name__ == "__main__":
    main()
