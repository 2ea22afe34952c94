"""Tournament leaderboard read latency: Redis sorted set vs. PostgreSQL, 10 000 participants.

One command:

    .venv/bin/python bench/tournament_board.py                  # 10 000 participants, 2 000 reads

What it does:

1. Creates its own PostgreSQL database (``jackpotx_bench_board``) and tables from the models,
   one running tournament and ``--participants`` players with scores drawn from a small range
   (many ties) and ``score_at`` instants that repeat (ties on the tie-breaker too).
2. Builds the Redis board from PostgreSQL once (timed: what a read after a Redis restart pays).
3. Checks that both paths give the same board (top ``--limit`` and the position of every 97th
   player) — a bench that compares two different answers measures nothing.
4. Times ``tournaments.board_json(tour, caller, limit)`` — what ``GET .../leaderboard`` runs —
   with the caller spread over the whole ranking, ``--reads`` times through Redis and ``--reads``
   times with Redis bypassed (PostgreSQL: top N ``ORDER BY`` + the caller's ``count(*)`` ahead),
   interleaved in rounds so load changes on the machine hit both alike.
5. Times the ranking alone (``tournament_board.read`` vs ``tournament_board.postgres``, no
   name join) and prints it.
6. Prints, as its last line:
   ``participants=<n> redis_p50_ms=<n> redis_p99_ms=<n> pg_p50_ms=<n> pg_p99_ms=<n> ratio=<n>``
   (ratio = PostgreSQL p50 / Redis p50).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.callbacks import DEFAULT_PG, create_database, drop_database  # noqa: E402

DEFAULT_REDIS = "redis://127.0.0.1:6379/6"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--participants", type=int, default=10_000)
    p.add_argument("--reads", type=int, default=2_000, help="timed reads per path")
    p.add_argument("--limit", type=int, default=10, help="top N")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    p.add_argument("--db-name", default="jackpotx_bench_board")
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    p.add_argument("--keep-db", action="store_true", help="do not drop the database afterwards")
    return p.parse_args()


def seed(n: int) -> tuple[int, list[int]]:
    """One running tournament with ``n`` participants: (tournament id, user ids)."""
    from app.core.base import utcnow
    from app.core.db import atomic
    from app.core.extensions import db
    from app.identity import access
    from app.identity.models import PLAYER, User
    from app.prizes.models import Tournament, TournamentParticipant

    rng = random.Random(9)
    now = utcnow()
    db.create_all()
    with atomic():
        access.ensure_roles()
        tour = Tournament(
            name="Bench Race",
            currency="EUR",
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(days=1),
            entry="free",
            scoring="wagered",
            min_bet=0,
            entry_fee=0,
            prizes=[],
            status="scheduled",
        )
        db.session.add(tour)
        db.session.flush()
        db.session.execute(
            sa.insert(User),
            [
                {
                    "username": f"board{i}",
                    "email": f"board{i}@bench.test",
                    "password_hash": "-",
                    "role_id": PLAYER,
                }
                for i in range(n)
            ],
        )
        user_ids = list(
            db.session.scalars(sa.select(User.id).where(User.email.like("%@bench.test")))
        )
        instants = [now - timedelta(minutes=m) for m in range(50)]
        db.session.execute(
            sa.insert(TournamentParticipant),
            [
                {
                    "tournament_id": tour.id,
                    "user_id": uid,
                    "score": rng.randrange(0, 5_000) * 100,
                    "score_at": rng.choice(instants),
                    "bets": rng.randint(1, 50),
                    "won": 0,
                    "wagered": 0,
                    "joined_at": now,
                }
                for uid in user_ids
            ],
        )
        return tour.id, user_ids


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def main() -> None:
    args = parse_args()
    db_url = create_database(args.pg, args.db_name)
    try:
        os.environ.update(
            {
                "ENV": "production",
                "DATABASE_URL": db_url,
                "REDIS_URL": args.redis,
                "SECRET_KEY": secrets.token_urlsafe(48),
                "JWT_SECRET_KEY": secrets.token_urlsafe(48),
                "AUDIT_CHAIN_KEY": secrets.token_urlsafe(48),
                "LOG_LEVEL": "WARNING",
            }
        )
        from cryptography.fernet import Fernet

        os.environ.setdefault("ENCRYPTION_KEY", Fernet.generate_key().decode())
        from app import create_app
        from app.core.extensions import db, redis_store
        from app.prizes import tournament_board, tournaments

        app = create_app()
        with app.app_context():
            t0 = time.perf_counter()
            tid, user_ids = seed(args.participants)
            print(f"seeded {len(user_ids)} participants in {time.perf_counter() - t0:.1f} s")
            tour = tournaments.get(tid)
            redis = redis_store.client()
            redis.delete(f"jx:tboard:{{{tid}}}")
            rebuild_s = timed(tournament_board.rebuild, tid, tour.ends_at)
            print(f"rebuild from PostgreSQL: {rebuild_s * 1000:.0f} ms")

            real_read = tournament_board.read

            def via_redis(uid: int) -> dict:
                board = tournaments.board_json(tour, uid, args.limit)
                db.session.rollback()  # end the read transaction as a request would
                return board

            def via_pg(uid: int) -> dict:
                tournament_board.read = lambda *a, **k: None
                try:
                    board = tournaments.board_json(tour, uid, args.limit)
                finally:
                    tournament_board.read = real_read
                db.session.rollback()
                return board

            for uid in user_ids[::97]:
                r_board = tournament_board.read(tid, tour.ends_at, uid, args.limit)
                p_board = tournament_board.postgres(tid, uid, args.limit)
                if r_board is None or (r_board.top, r_board.me) != (p_board.top, p_board.me):
                    raise SystemExit(f"boards differ for user {uid}: {r_board} vs {p_board}")
            print(f"boards identical (top {args.limit} and {len(user_ids[::97])} positions)")

            rng = random.Random(1)
            callers = [rng.choice(user_ids) for _ in range(args.reads)]
            for uid in callers[:50]:  # warm both paths (connections, statement caches)
                via_redis(uid)
                via_pg(uid)
            redis_t: list[float] = []
            pg_t: list[float] = []
            for i in range(0, len(callers), 100):
                chunk = callers[i : i + 100]
                redis_t += [timed(via_redis, uid) for uid in chunk]
                pg_t += [timed(via_pg, uid) for uid in chunk]
            # The ranking alone (no name join): ZREVRANGE + ZREVRANK vs ORDER BY + count(*).
            rank_r = [
                timed(tournament_board.read, tid, tour.ends_at, uid, args.limit) for uid in callers
            ]
            db.session.rollback()
            rank_p = []
            for uid in callers:
                rank_p.append(timed(tournament_board.postgres, tid, uid, args.limit))
                db.session.rollback()
            print(
                f"ranking only: redis_p50_ms={statistics.median(rank_r) * 1000:.2f} "
                f"pg_p50_ms={statistics.median(rank_p) * 1000:.2f}"
            )
            r50, p50 = statistics.median(redis_t) * 1000, statistics.median(pg_t) * 1000
            print(
                f"participants={len(user_ids)} redis_p50_ms={r50:.2f} "
                f"redis_p99_ms={pct(redis_t, 0.99):.2f} pg_p50_ms={p50:.2f} "
                f"pg_p99_ms={pct(pg_t, 0.99):.2f} ratio={p50 / r50:.1f}"
            )
            for key in redis.scan_iter(f"jx:tboard:{{{tid}}}*", count=1000):
                redis.delete(key)
            db.session.remove()
            db.engine.dispose()
    finally:
        if not args.keep_db:
            drop_database(args.pg, args.db_name)


if __name__ == "__main__":
    main()
