"""The failure policy, with real faults: a held row lock, Redis unreachable, hostile bodies.

Infrastructure failures answer a retryable 503 (``Retry-After``) in the API envelope or the
protocol's retryable error on callbacks, never a 500, and change nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
import sqlalchemy as sa

from app.core.db import atomic
from app.core.errors import outage_kind
from app.core.extensions import db
from app.identity.models import User
from app.wallet.models import Wallet
from tests.identity_helpers import bearer, tokens
from tests.live import free_port
from tests.moneykit import fund, open_table, reconcile_clean, wallet_row_locked
from tests.payments_helpers import sandbox_gateway


def _held(user_id: int) -> tuple[int, int]:
    db.session.expire_all()
    w = db.session.scalar(sa.select(Wallet).where(Wallet.user_id == user_id))
    return w.balance, w.held_balance


@pytest.mark.postgres
def test_a_held_wallet_lock_answers_503_retry_after_within_the_lock_timeout(
    app, committed_db, requires_postgres, factory, token_for
):
    sandbox_gateway()
    player = factory.player()
    with atomic():
        db.session.get(User, player.id).kyc_status = "approved"
    fund(player.id, 100_00)
    headers = token_for(player)
    db.session.remove()
    body = {"amount": "40.00", "method": "sandbox", "currency": "EUR"}
    with wallet_row_locked(player.id):
        started = time.monotonic()
        response = app.test_client().post("/api/withdrawals/request", headers=headers, json=body)
        waited = time.monotonic() - started
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["Retry-After"].isdigit()
    lock_timeout = app.config["DB_LOCK_TIMEOUT_MS"] / 1000
    assert lock_timeout <= waited < lock_timeout + 3
    assert _held(player.id) == (100_00, 0)
    # The lock is gone: the same request now goes through.
    retry = app.test_client().post("/api/withdrawals/request", headers=headers, json=body)
    assert retry.status_code == 201, retry.get_json()
    assert _held(player.id) == (60_00, 40_00)
    reconcile_clean()


@pytest.mark.postgres
def test_a_held_wallet_lock_gives_callbacks_the_retryable_error_and_the_retry_applies(
    app, client, committed_db, requires_postgres, factory
):
    table = open_table(client, factory)
    db.session.remove()
    with wallet_row_locked(table.user_id):
        started = time.monotonic()
        answer = table.bet("t1", "5.00")
        waited = time.monotonic() - started
    assert answer["status"] == "error"
    assert answer["code"] == "INTERNAL_ERROR"
    assert waited < app.config["DB_LOCK_TIMEOUT_MS"] / 1000 + 3
    assert table.balances() == (100_00, 0)
    retried = table.bet("t1", "5.00")
    assert retried["status"] == "ok"
    assert retried["balance"] == "95.00"
    assert table.bet("t1", "5.00") == retried
    reconcile_clean()


@pytest.mark.postgres
def test_a_lock_timeout_is_classified_as_a_database_outage(app, committed_db, requires_postgres):
    with db.engine.connect() as holder, db.engine.connect() as waiter:
        holder.begin()
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(4242)"))
        waiter.begin()
        waiter.execute(sa.text("SET LOCAL lock_timeout = 100"))
        with pytest.raises(sa.exc.OperationalError) as caught:
            waiter.execute(sa.text("SELECT pg_advisory_xact_lock(4242)"))
    assert caught.value.orig.pgcode == "55P03"
    assert outage_kind(caught.value) == "database"
    assert outage_kind(ValueError("a bug")) is None


@contextmanager
def redis_unreachable(app) -> Iterator[None]:
    """The app's Redis points at a port where nothing listens (connection refused)."""
    original = app.extensions["redis"]
    app.extensions["redis"] = redis.Redis(
        port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5
    )
    try:
        yield
    finally:
        app.extensions["redis"] = original


def test_with_redis_down_a_signed_in_player_keeps_working(app, client, factory):
    """JWT policy: every issued token names its login session, whose revocation lives in the
    database; Redis is not needed to tell a live token from a revoked one."""
    player = factory.player()
    fund(player.id, 25_00)
    token = tokens(client, player.username)["access_token"]
    with redis_unreachable(app):
        balance = client.get("/api/user/balance", headers=bearer(token))
        assert balance.status_code == 200, balance.get_json()
        logout = client.post("/api/auth/logout", headers=bearer(token))
        assert logout.status_code == 200, logout.get_json()
        after = client.get("/api/user/balance", headers=bearer(token))
        assert after.status_code == 401


def test_with_redis_down_a_token_outside_a_session_fails_closed_with_503(
    app, client, factory, token_for
):
    headers = token_for(factory.player())  # no session id: only the deny-list can revoke it
    with redis_unreachable(app):
        response = client.get("/api/user/balance", headers=headers)
    assert response.status_code == 503
    assert response.get_json()["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["Retry-After"].isdigit()


def test_with_redis_down_callbacks_keep_settling(app, client, factory):
    table = open_table(client, factory)
    with redis_unreachable(app):
        assert table.bet("t1", "5.00")["balance"] == "95.00"
        assert table.win("t2", "7.50")["balance"] == "102.50"
    reconcile_clean()


def test_a_json_body_nested_too_deep_is_a_400_envelope(client):
    response = client.post(
        "/api/auth/login",
        data="[" * 50_000 + "]" * 50_000,
        content_type="application/json",
    )
    assert response.status_code in (400, 413)
    assert response.get_json()["success"] is False
    shallow_but_deep = client.post(
        "/api/auth/login", data="[" * 40 + "]" * 40, content_type="application/json"
    )
    assert shallow_but_deep.status_code == 400
    assert shallow_but_deep.get_json()["code"] == "VALIDATION_ERROR"


def test_an_api_json_body_over_the_limit_is_413(app, client):
    limit = app.config["API_MAX_JSON_BYTES"]
    response = client.post(
        "/api/auth/login",
        data='{"username": "' + "a" * limit + '"}',
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.get_json()["code"] == "PAYLOAD_TOO_LARGE"


def test_a_webhook_body_over_the_limit_is_413(client):
    response = client.post(
        "/api/payment/webhook/sandbox",
        data=b"{" + b" " * 40_000 + b"}",
        content_type="application/json",
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5_000 + b"]" * 5_000,
        b'{"event": "payment.completed", "event": "payment.failed", "transaction_id": "x"}',
    ],
    ids=["deep", "key twice"],
)
def test_a_correctly_signed_hostile_webhook_is_a_400_and_changes_nothing(client, body):
    from tests.payments_helpers import signed_sandbox

    sandbox_gateway()
    raw, headers = signed_sandbox(body)
    response = client.post("/api/payment/webhook/sandbox", data=raw, headers=headers)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["code"] == "VALIDATION_ERROR"
