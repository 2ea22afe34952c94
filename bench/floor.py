"""The floor: the least a seamless-wallet bet can cost on this stack (issue 15).

A bare Flask app, served exactly like JackpotX (``gunicorn -c gunicorn.conf.py
bench.floor:app``: the same gevent + WebSocket worker class, worker count, keep-alive and
psycogreen patch), that does what a signed bet must do and nothing else:

1. HMAC-SHA256 of the raw body against ``X-Signature``;
2. parse the JSON;
3. look the session up by its token;
4. claim the transaction id (``INSERT ... ON CONFLICT DO NOTHING RETURNING id``; a taken id
   answers the first answer from its ledger row and moves nothing);
5. lock the wallet (``SELECT ... FOR UPDATE``), refuse if the stake exceeds the balance;
6. move the balance (``UPDATE``), insert one ledger row;
7. commit and answer the balance.

Its own tables (``floor_*``) in its own database, created by :func:`create_schema`; psycopg2
connections in a pool of at most 15, opened on demand (JackpotX's production pool: 15, no
overflow). Configured by the environment: ``FLOOR_DSN`` and ``FLOOR_SECRET``;
``FLOOR_DRIVER=psycopg`` serves the same statements on psycopg 3 instead (``pip install
'psycopg[binary]'``, not a dependency of the project: a measurement of what the driver alone
would change, ``docs/perf.md`` item 31; psycopg 3 prepares a statement on the server from its
fifth run on a connection, and supports gevent by itself).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import psycopg2
from flask import Flask, Response, request

POOL_SIZE = 15  # JackpotX's production pool: DB_POOL_SIZE=15, DB_MAX_OVERFLOW=0


def _connector() -> Any:
    if os.environ.get("FLOOR_DRIVER", "psycopg2") == "psycopg":
        import psycopg  # psycopg 3: only for the driver comparison

        return psycopg.connect
    return psycopg2.connect


SCHEMA = """
CREATE TABLE floor_wallets (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    currency char(3) NOT NULL,
    balance bigint NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, currency)
);
CREATE TABLE floor_sessions (
    token text PRIMARY KEY,
    user_id bigint NOT NULL,
    wallet_id bigint NOT NULL REFERENCES floor_wallets (id),
    currency char(3) NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE floor_claims (
    id bigserial PRIMARY KEY,
    external_id text NOT NULL UNIQUE,
    user_id bigint NOT NULL,
    amount bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE floor_ledger (
    id bigserial PRIMARY KEY,
    wallet_id bigint NOT NULL REFERENCES floor_wallets (id),
    claim_id bigint NOT NULL UNIQUE REFERENCES floor_claims (id),
    delta bigint NOT NULL,
    balance_after bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""


def create_schema(dsn: str, tokens: list[str], balance: int, currency: str = "EUR") -> None:
    """The floor's tables, one funded wallet and one live session per token."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(SCHEMA)
            for user_id, token in enumerate(tokens, start=1):
                cur.execute(
                    "INSERT INTO floor_wallets (user_id, currency, balance) VALUES (%s, %s, %s)"
                    " RETURNING id",
                    (user_id, currency, balance),
                )
                wallet_id = cur.fetchone()[0]
                cur.execute(
                    "INSERT INTO floor_sessions (token, user_id, wallet_id, currency, expires_at)"
                    " VALUES (%s, %s, %s, %s, now() + interval '1 day')",
                    (token, user_id, wallet_id, currency),
                )
    finally:
        conn.close()


class Pool:
    """At most ``size`` connections, opened on demand; a checkout waits for a free one
    (``queue`` is gevent-aware once gunicorn's worker has patched the process)."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.connect = _connector()
        self.free: queue.LifoQueue = queue.LifoQueue()
        self.slots = queue.Queue()
        for _ in range(size):
            self.slots.put(None)

    @contextmanager
    def connection(self) -> Iterator:
        try:
            conn = self.free.get_nowait()
        except queue.Empty:
            try:
                self.slots.get_nowait()
                conn = self.connect(self.dsn)
            except queue.Empty:
                conn = self.free.get()
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        finally:
            self.free.put(conn)


def _answer(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def create_app() -> Flask:
    app = Flask(__name__)
    secret = os.environ["FLOOR_SECRET"].encode()
    pool = Pool(os.environ["FLOOR_DSN"], POOL_SIZE)

    @app.get("/health")
    def health() -> Response:
        return _answer({"status": "ok"})

    @app.post("/bet")
    def bet() -> Response:
        body = request.get_data()
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Signature", "")):
            return _answer({"status": "error", "code": "INVALID_SIGNATURE"})
        payload = json.loads(body)
        amount = int(Decimal(payload["amount"]) * 100)
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT user_id, wallet_id, currency FROM floor_sessions"
                " WHERE token = %s AND expires_at > now()",
                (payload["session_token"],),
            )
            session = cur.fetchone()
            if session is None or session[2] != payload["currency"]:
                conn.rollback()
                return _answer({"status": "error", "code": "INVALID_SESSION"})
            user_id, wallet_id, currency = session
            cur.execute(
                "INSERT INTO floor_claims (external_id, user_id, amount) VALUES (%s, %s, %s)"
                " ON CONFLICT (external_id) DO NOTHING RETURNING id",
                (payload["transaction_id"], user_id, amount),
            )
            claim = cur.fetchone()
            if claim is None:  # a replay: the first answer, nothing moves
                cur.execute(
                    "SELECT l.balance_after, c.id FROM floor_claims c"
                    " JOIN floor_ledger l ON l.claim_id = c.id WHERE c.external_id = %s",
                    (payload["transaction_id"],),
                )
                balance, claim_id = cur.fetchone()
                conn.rollback()
                return _answer(
                    {
                        "status": "ok",
                        "balance": _money(balance),
                        "currency": currency,
                        "transaction_id": str(claim_id),
                    }
                )
            cur.execute("SELECT balance FROM floor_wallets WHERE id = %s FOR UPDATE", (wallet_id,))
            (balance,) = cur.fetchone()
            if amount > balance:
                conn.rollback()
                return _answer({"status": "error", "code": "INSUFFICIENT_FUNDS"})
            cur.execute(
                "UPDATE floor_wallets SET balance = balance - %s, updated_at = now() WHERE id = %s",
                (amount, wallet_id),
            )
            cur.execute(
                "INSERT INTO floor_ledger (wallet_id, claim_id, delta, balance_after)"
                " VALUES (%s, %s, %s, %s)",
                (wallet_id, claim[0], -amount, balance - amount),
            )
            conn.commit()
        return _answer(
            {
                "status": "ok",
                "balance": _money(balance - amount),
                "currency": currency,
                "transaction_id": str(claim[0]),
            }
        )

    return app


if os.environ.get("FLOOR_DSN"):
    app = create_app()
