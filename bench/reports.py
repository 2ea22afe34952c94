"""Reports at millions of bets: the 90-day financial report and the analytics dashboard from
the raw tables vs from the daily rollups, and the rollup job's time per day.

One command:

    .venv/bin/python bench/reports.py --bets 5000000

What it does:

1. Creates its own PostgreSQL database (``jackpotx_bench_reports``; ``--keep-db`` keeps it)
   and the tables from the models; 3 providers (through ``games.create_provider``), 12 games
   each with a declared RTP of 96.00 %, ``--players`` players with a wallet.
2. Generates ``--bets`` bets in SQL (``generate_series``, no Python loop): one closed round,
   one provider transaction and one ``bet`` ledger row each, spread uniformly over the 90 days
   up to now; a third of the rounds win (paid so that each game's RTP comes near 96 %, one
   game near 90 %: the RTP check must flag it), each win with its provider transaction and
   ``win`` ledger row; one deposit per 25 bets, in large ``INSERT ... SELECT`` statements,
   with the big tables' secondary indexes, unique and foreign-key constraints dropped during
   the load and built once after it. Then ``VACUUM ANALYZE``.
3. Times, from the raw tables (nothing rolled yet): ``financial.financial`` over the 90 days
   (what the financial report did before the rollups) and ``rollups.dashboard`` (every day
   folded live: the same figures computed from the ledger).
4. Rolls every day (``rollups.rollup_day``, what the periodic job and ``flask jackpotx
   reports rollup`` run) and times each.
5. Times today folded whole from the raw tables (what every read did before the incremental
   fold) against ``rollups.plan`` for today (the rollup rows to the cutoff + the rows since),
   and the same answers from the rollups (``rollups.financial_report`` and
   ``rollups.dashboard``: the 89 past days from the rollup tables, today folded live), the
   per-provider analytics and the RTP check; checks that raw and rolled answers agree.
6. Prints, as its last line:
   ``bets=<n> financial_raw_s=.. financial_rollup_s=.. dashboard_raw_s=..
   dashboard_rollup_s=.. rollup_day_mean_s=.. rollup_day_max_s=.. rtp_check_s=..``
   (a rollup-based figure is the median of ``--reads`` runs; a raw one is the best of 2),
   plus ``today_full_s`` / ``today_incremental_s``.
7. ``--callbacks SECONDS``: signed bet callbacks (``bench/callbacks.py``'s players, provider,
   gunicorn and load generator, 4 connections, one worker) against this database, in four
   phases: alone, while the rollup reports loop, while the raw 90-day report loops, alone
   again; prints ``callbacks_p50_ms ... callbacks_p99_ms ...`` for each.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.callbacks import DEFAULT_PG, create_database, drop_database  # noqa: E402

DEFAULT_REDIS = "redis://127.0.0.1:6379/6"
DAYS = 90
GAMES_PER_PROVIDER = 12
#: Users and wallets get ids from here (below: the roles' and staff's rows).
UID0 = 100_000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bets", type=int, default=5_000_000)
    p.add_argument("--players", type=int, default=20_000)
    p.add_argument("--reads", type=int, default=5, help="timed runs of each rollup answer")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG))
    p.add_argument("--db-name", default="jackpotx_bench_reports")
    p.add_argument("--redis", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    p.add_argument("--keep-db", action="store_true", help="do not drop the database afterwards")
    p.add_argument(
        "--callbacks",
        type=float,
        default=0,
        metavar="SECONDS",
        help="then run bench/callbacks.py's signed bets (4 connections, one gunicorn worker)\n"
        "against this database for SECONDS per phase: alone, while the rollup reports loop,\n"
        "while the raw 90-day report loops, alone again (callback p50/p99 of each)",
    )
    p.add_argument(
        "--no-raw-dashboard",
        action="store_true",
        help="skip the dashboard folded live over 90 days (minutes at millions of bets)",
    )
    return p.parse_args()


SEED_SQL = [
    # Players and their EUR wallets.
    """
    INSERT INTO users (id, username, email, password_hash, role_id, status, currency,
        marketing_consent, totp_enabled, failed_logins, kyc_status, kyc_level,
        created_at, updated_at)
    SELECT :uid0 + k, 'player' || k, 'player' || k || '@example.test', 'x', 2, 'active', 'EUR',
        false, false, 0, 'none', 0, :t0, :t0
    FROM generate_series(1, :players) AS k
    """,
    """
    INSERT INTO wallets (id, user_id, currency, balance, bonus_balance, held_balance,
        created_at, updated_at)
    SELECT :uid0 + k, :uid0 + k, 'EUR', 0, 0, 0, :t0, :t0 FROM generate_series(1, :players) AS k
    """,
    # The bets, once, in an unlogged scratch table: the three tables below read it.
    "SELECT setseed(0.19)",
    """
    CREATE UNLOGGED TABLE bench_bets AS
    SELECT i,
        CAST(:t0 AS timestamptz)
            + random() * (CAST(:now AS timestamptz) - CAST(:t0 AS timestamptz)) AS ts,
        :uid0 + 1 + (i * 7919) % :players AS uid,
        g.id AS game_id, g.provider_id, p.code,
        100 * (1 + floor(random() * 20)::int) AS amount,
        random() < 1.0 / 3 AS wins,
        g.rtp AS rtp
    FROM generate_series(CAST(1 AS bigint), :bets) AS i
    JOIN bench_games AS bg ON bg.n = i % :games
    JOIN games AS g ON g.id = bg.game_id
    JOIN game_providers AS p ON p.id = g.provider_id
    """,
    """
    INSERT INTO game_rounds (id, provider_id, external_round_id, user_id, game_id, currency,
        status, total_bet, total_win, total_refund, bet_cash, bet_bonus, bets_count,
        created_at, updated_at, closed_at)
    SELECT i, provider_id, 'r' || i, uid, game_id, 'EUR', 'closed', amount,
        CASE WHEN wins THEN round(amount * 3 * rtp / 100) ELSE 0 END, 0, amount, 0, 1,
        ts, ts, ts
    FROM bench_bets
    """,
    """
    INSERT INTO provider_transactions (id, provider_id, external_id, action, state, user_id,
        external_round_id, currency, amount, fingerprint, created_at)
    SELECT i, provider_id, 'b' || i, 'bet', 'applied', uid, 'r' || i, 'EUR', amount, 'bench', ts
    FROM bench_bets
    """,
    """
    INSERT INTO provider_transactions (id, provider_id, external_id, action, state, user_id,
        external_round_id, currency, amount, fingerprint, created_at)
    SELECT :bets + i, provider_id, 'w' || i, 'win', 'applied', uid, 'r' || i, 'EUR',
        round(amount * 3 * rtp / 100), 'bench', ts + interval '1 second'
    FROM bench_bets WHERE wins
    """,
    """
    INSERT INTO ledger_transactions (wallet_id, user_id, currency, type, source, idempotency_key,
        reference_type, reference_id, cash_delta, bonus_delta, held_delta, balance_after,
        bonus_balance_after, created_at)
    SELECT uid, uid, 'EUR', 'bet', 'provider:' || code, 'b' || i, 'provider_transaction',
        i::text, -amount, 0, 0, 0, 0, ts
    FROM bench_bets
    """,
    """
    INSERT INTO ledger_transactions (wallet_id, user_id, currency, type, source, idempotency_key,
        reference_type, reference_id, cash_delta, bonus_delta, held_delta, balance_after,
        bonus_balance_after, created_at)
    SELECT uid, uid, 'EUR', 'win', 'provider:' || code, 'w' || i, 'provider_transaction',
        (:bets + i)::text, round(amount * 3 * rtp / 100), 0, 0, 0, 0, ts + interval '1 second'
    FROM bench_bets WHERE wins
    """,
    """
    INSERT INTO ledger_transactions (wallet_id, user_id, currency, type, source, idempotency_key,
        cash_delta, bonus_delta, held_delta, balance_after, bonus_balance_after, created_at)
    SELECT uid, uid, 'EUR', 'deposit', 'payments', 'd' || i, 5000, 0, 0, 0, 0,
        ts - interval '1 minute'
    FROM bench_bets WHERE i % 25 = 0
    """,
    "DROP TABLE bench_bets",
    "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))",
    "SELECT setval(pg_get_serial_sequence('wallets', 'id'), (SELECT max(id) FROM wallets))",
    "SELECT setval(pg_get_serial_sequence('game_rounds', 'id'), (SELECT max(id) FROM game_rounds))",
    "SELECT setval(pg_get_serial_sequence('provider_transactions', 'id'),"
    " (SELECT max(id) FROM provider_transactions))",
]


#: The tables the seed fills with millions of rows.
BIG_TABLES = ("ledger_transactions", "game_rounds", "provider_transactions")


def _drop_secondary(conn: Any) -> list[str]:
    """Drop the big tables' secondary indexes and their unique and foreign-key constraints;
    return the statements that put them back (constraints after indexes)."""
    tables = {"t": list(BIG_TABLES)}
    constraints = conn.execute(
        sa.text(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype"
            " FROM pg_constraint c WHERE c.conrelid::regclass::text = ANY(:t)"
            " AND c.contype IN ('u', 'f')"
        ),
        tables,
    ).all()
    indexes = conn.execute(
        sa.text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = ANY(:t)"
            " AND i.indexname NOT IN (SELECT conname FROM pg_constraint"
            " WHERE contype IN ('p', 'u'))"
        ),
        tables,
    ).all()
    restore = [defn for _, defn in indexes]
    # Unique constraints first (their indexes), foreign keys last.
    for table, name, _defn, _ in sorted(constraints, key=lambda c: c[3] == "f", reverse=True):
        conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for table, name, defn, _ in sorted(constraints, key=lambda c: c[3] == "f"):
        restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {defn}')
    for name, _ in indexes:
        conn.execute(sa.text(f'DROP INDEX "{name}"'))
    return restore


def seed(args: argparse.Namespace, now: datetime) -> None:
    from decimal import Decimal

    from app.core.db import atomic
    from app.core.extensions import db
    from app.identity import access
    from app.play import games
    from app.play.models import Game

    db.create_all()
    with atomic():
        access.ensure_roles()
        ids: list[int] = []
        for p in range(3):
            provider = games.create_provider(
                code=f"bench{p}", name=f"Bench Studio {p}", secret=secrets.token_hex(16)
            )
            for k in range(GAMES_PER_PROVIDER):
                game = Game(
                    provider_id=provider.id,
                    external_id=f"g{p}-{k}",
                    name=f"Bench Game {p}-{k}",
                    # The last game pays near 90 %, the rest near 96 %.
                    rtp=Decimal("96.00"),
                    min_bet=0,
                    max_bet=0,
                    status="active",
                )
                db.session.add(game)
                db.session.flush()
                ids.append(game.id)
        # What the games pay (used by the generator); the declared RTP is set back to 96.
        db.session.get_one(Game, ids[-1]).rtp = Decimal("90.00")
    conn_params = {
        "uid0": UID0,
        "players": args.players,
        "bets": args.bets,
        "games": len(ids),
        "t0": now - timedelta(days=DAYS),
        "now": now,
    }
    with db.engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
        conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
        # Bulk load: the big tables' secondary indexes, unique and foreign-key constraints
        # are dropped before the load and built once after it (a b-tree built from sorted
        # input instead of millions of single inserts, no per-row FK lookups).
        deferred = _drop_secondary(conn)
        conn.execute(sa.text("CREATE UNLOGGED TABLE bench_games (n int, game_id bigint)"))
        conn.execute(
            sa.text("INSERT INTO bench_games VALUES (:n, :g)"),
            [{"n": n, "g": g} for n, g in enumerate(ids)],
        )
        for statement in SEED_SQL:
            t0 = time.perf_counter()
            conn.execute(sa.text(statement), conn_params)
            first = " ".join(statement.split())[:60]
            print(f"  {time.perf_counter() - t0:6.1f} s  {first}", flush=True)
        conn.execute(sa.text("DROP TABLE bench_games"))
        conn.execute(sa.text("UPDATE games SET rtp = 96.00"))
        t0 = time.perf_counter()
        for statement in deferred:
            conn.execute(sa.text(statement))
        print(
            f"  {time.perf_counter() - t0:6.1f} s  {len(deferred)} indexes and constraints built",
            flush=True,
        )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    from app.core.extensions import db

    t0 = time.perf_counter()
    out = fn()
    elapsed = time.perf_counter() - t0
    db.session.rollback()  # end the read transaction as a request would
    return elapsed, out


def best(fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    runs = [timed(fn) for _ in range(n)]
    return min(r[0] for r in runs), runs[-1][1]


def median(fn: Callable[[], Any], n: int) -> tuple[float, Any]:
    runs = [timed(fn) for _ in range(n)]
    return statistics.median(r[0] for r in runs), runs[-1][1]


def _report_loop(app: Any, fns: list[Callable[[], Any]], stop: Any, done: list[int]) -> None:
    """Run the reports back to back until ``stop`` is set (one request's session each)."""
    from app.core.extensions import db

    with app.app_context():
        while not stop.is_set():
            for fn in fns:
                fn()
                db.session.rollback()
                done[0] += 1


def callbacks_under_reports(
    args: argparse.Namespace,
    app: Any,
    db_url: str,
    raw: Callable[[], Any],
    rolled: list[Callable[[], Any]],
) -> None:
    """Signed bet callbacks against a live gunicorn on this database, in phases of
    ``--callbacks`` seconds: alone, while the rollup reports run back to back in this process,
    while the raw 90-day financial report runs, alone again. Prints p50/p99 of each."""
    import threading

    from bench import callbacks as cb

    cb_args = argparse.Namespace(
        seconds=args.callbacks, redis=args.redis, log_level="WARNING", workers=1
    )
    env = cb.app_env(cb_args, db_url)
    saved = dict(os.environ)
    secret, tokens, _ = cb.seed(env, 100)
    os.environ.clear()
    os.environ.update(saved)
    port = cb.free_port()
    server = cb.start_server(env, port)
    target = cb.Target("jackpotx", port, f"/api/provider-callback/{cb.PROVIDER}", server)
    print(f"callbacks while reports run (4 connections, {args.callbacks:.0f} s per phase):")
    reports_done: dict[str, int] = {}
    try:
        phases: list[tuple[str, list[Callable[[], Any]]]] = [
            ("idle", []),
            ("roll", rolled),
            ("raw", [raw]),
            ("idl2", []),
        ]
        for phase, fns in phases:
            stop = threading.Event()
            done = [0]
            thread = (
                threading.Thread(target=_report_loop, args=(app, fns, stop, done), daemon=True)
                if fns
                else None
            )
            if thread is not None:
                thread.start()
            cb.load(cb_args, target, secret, tokens, phase=phase, connections=4)
            stop.set()
            if thread is not None:
                thread.join()
            reports_done[phase] = done[0]
    finally:
        cb.stop_server(target.proc)
    r = target.results
    print(
        "  reports answered during the phase: "
        + ", ".join(f"{k} {v}" for k, v in reports_done.items() if v)
    )
    print(
        f"callbacks_p50_ms idle={r['idle']['p50']:.1f} rollup_reports={r['roll']['p50']:.1f}"
        f" raw_report={r['raw']['p50']:.1f} idle_again={r['idl2']['p50']:.1f}"
        f" callbacks_p99_ms idle={r['idle']['p99']:.1f} rollup_reports={r['roll']['p99']:.1f}"
        f" raw_report={r['raw']['p99']:.1f} idle_again={r['idl2']['p99']:.1f}"
        f" load={os.getloadavg()[0]:.1f}",
        flush=True,
    )


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
                # The web profile's 15 s would cancel the raw 90-day reads at millions of
                # bets (that is the point of the rollups); the bench times them instead.
                "DB_STATEMENT_TIMEOUT_MS": "600000",
            }
        )
        from cryptography.fernet import Fernet

        os.environ.setdefault("ENCRYPTION_KEY", Fernet.generate_key().decode())
        from app import create_app
        from app.core.extensions import db
        from app.reports import financial, rollups, rtp

        app = create_app()
        # The RTP check over the whole bench window (the operator setting's default).
        app.config["RTP_WINDOW_DAYS"] = DAYS - 1
        with app.app_context():
            now = datetime.now(UTC)
            today = now.date()
            first = today - timedelta(days=DAYS - 1)
            t0 = time.perf_counter()
            print(f"seeding {args.bets} bets over {DAYS} days ...", flush=True)
            seed(args, now)
            counts = db.session.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM ledger_transactions),"
                    " (SELECT count(*) FROM game_rounds),"
                    " pg_size_pretty(pg_database_size(current_database()))"
                )
            ).one()
            db.session.rollback()
            print(
                f"seeded in {time.perf_counter() - t0:.0f} s: {counts[0]} ledger rows,"
                f" {counts[1]} rounds, database {counts[2]}",
                flush=True,
            )

            def fin_raw():
                return financial.financial(first, today, currency="EUR")

            def fin_rolled():
                return rollups.financial_report(first, today, currency="EUR")

            def dash():
                return rollups.dashboard(first, today, currency="EUR")

            def by_provider():
                return rollups.providers(first, today, currency="EUR")

            fin_raw_s, raw_report = best(fin_raw, 2)
            print(f"financial report, 90 days, raw ledger: {fin_raw_s:.2f} s", flush=True)
            dash_raw_s, raw_dash = float("nan"), None
            if not args.no_raw_dashboard:
                dash_raw_s, raw_dash = timed(dash)
                print(f"dashboard, 90 days, every day folded live: {dash_raw_s:.2f} s", flush=True)

            per_day: list[float] = []
            for i, day in enumerate(rollups.days_between(first - timedelta(days=1), today)):
                t = time.perf_counter()
                rollups.rollup_day(day)
                per_day.append(time.perf_counter() - t)
                if i % 10 == 0:
                    print(f"  rolled {day} in {per_day[-1]:.2f} s", flush=True)
            print(
                f"rollup per day: mean {statistics.mean(per_day):.2f} s,"
                f" max {max(per_day):.2f} s, {len(per_day)} days",
                flush=True,
            )

            # Today: folded whole from the raw tables (what every read did before the
            # incremental fold) vs its rollup rows up to the cutoff plus the rows since.
            today_full_s, _ = median(lambda: rollups._fold_day(today), args.reads)
            today_inc_s, _ = median(lambda: rollups.plan(today, today), args.reads)
            print(
                f"today: whole day folded live {today_full_s * 1000:.0f} ms,"
                f" rollup to the cutoff + live since {today_inc_s * 1000:.0f} ms",
                flush=True,
            )
            fin_rolled_s, rolled_report = median(fin_rolled, args.reads)
            dash_rolled_s, rolled_dash = median(dash, args.reads)
            prov_s, _ = median(by_provider, args.reads)
            rtp_s, result = timed(lambda: rtp.check(now=now))
            assert [r.figures() for r in rolled_report.rows] == [
                r.figures() for r in raw_report.rows
            ], "the rollups and the ledger disagree"
            assert raw_dash is None or rolled_dash["totals"] == raw_dash["totals"], (
                "dashboards disagree"
            )
            flagged = [m for m in result.measures if m.verdict == "outside"]
            print(
                f"from rollups (today live): financial {fin_rolled_s * 1000:.0f} ms,"
                f" dashboard {dash_rolled_s * 1000:.0f} ms,"
                f" per provider {prov_s * 1000:.0f} ms;"
                f" RTP check {rtp_s * 1000:.0f} ms ({len(flagged)} game(s) flagged:"
                f" {', '.join(f'#{m.game_id} {m.measured} %' for m in flagged)})",
                flush=True,
            )
            print(
                f"bets={args.bets} financial_raw_s={fin_raw_s:.2f}"
                f" financial_rollup_s={fin_rolled_s:.3f} dashboard_raw_s={dash_raw_s:.2f}"
                f" dashboard_rollup_s={dash_rolled_s:.3f}"
                f" rollup_day_mean_s={statistics.mean(per_day):.2f}"
                f" rollup_day_max_s={max(per_day):.2f} rtp_check_s={rtp_s:.3f}"
                f" today_full_s={today_full_s:.3f} today_incremental_s={today_inc_s:.3f}"
            )
            if args.callbacks > 0:
                callbacks_under_reports(args, app, db_url, fin_raw, [fin_rolled, dash])
            db.session.remove()
            db.engine.dispose()
    finally:
        if not args.keep_db:
            drop_database(args.pg, args.db_name)


if __name__ == "__main__":
    main()
