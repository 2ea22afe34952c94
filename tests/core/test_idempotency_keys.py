"""``Idempotency-Key`` on the endpoints that move money: a retry replays the first answer and
moves nothing; another request under the same key is refused; keys belong to their caller and
expire; outages are not stored; racing requests with one key make one movement."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.core import idempotency
from app.core.base import utcnow
from app.core.db import atomic
from app.core.errors import ServiceUnavailable
from app.core.extensions import db
from app.core.models import IdempotencyKey
from app.core.schedule import PERIODIC_JOBS
from app.identity.models import User
from app.payments import hooks as payment_hooks
from app.payments.models import PaymentGateway, PaymentTransaction
from app.prizes import tournaments
from app.wallet.models import LedgerTransaction, Wallet
from tests.moneykit import fund, reconcile_clean
from tests.payments_helpers import allow_withdrawal_reversal, sandbox_gateway

WITHDRAW = "/api/withdrawals/request"
BODY = {"amount": "30.00", "currency": "EUR", "method": "sandbox"}


@pytest.fixture
def gateway(app):
    return sandbox_gateway()


def funded_player(factory, cash: int = 100_00) -> User:
    player = factory.player()
    fund(player.id, cash)
    return player


def post(client, token_for, user, path, body=None, key=None):
    headers = token_for(user)
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(path, json=body, headers=headers)


def wallet_of(user_id: int) -> tuple[int, int]:
    db.session.expire_all()
    w = db.session.scalar(sa.select(Wallet).where(Wallet.user_id == user_id))
    return (w.balance, w.held_balance)


def ledger_types(user_id: int) -> list[str]:
    return list(
        db.session.scalars(
            sa.select(LedgerTransaction.type)
            .where(LedgerTransaction.user_id == user_id)
            .order_by(LedgerTransaction.id)
        )
    )


def payments_of(user_id: int, kind: str) -> list[PaymentTransaction]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(PaymentTransaction)
            .where(PaymentTransaction.user_id == user_id, PaymentTransaction.type == kind)
            .order_by(PaymentTransaction.id)
        )
    )


def key_rows(user_id: int) -> list[IdempotencyKey]:
    db.session.expire_all()
    return list(
        db.session.scalars(sa.select(IdempotencyKey).where(IdempotencyKey.user_id == user_id))
    )


# --------------------------------------------------------------------------- replay


def test_a_retried_withdrawal_replays_the_first_answer_and_holds_once(
    client, factory, token_for, gateway
):
    player = funded_player(factory)
    first = post(client, token_for, player, WITHDRAW, BODY, key="wd-1")
    again = post(client, token_for, player, WITHDRAW, BODY, key="wd-1")

    assert first.status_code == again.status_code == 201, first.get_json()
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(payments_of(player.id, "withdrawal")) == 1
    assert wallet_of(player.id) == (70_00, 30_00)
    assert ledger_types(player.id) == ["deposit", "withdrawal_hold"]
    reconcile_clean()


def test_the_alias_path_is_the_same_operation_and_replays(client, factory, token_for, gateway):
    player = funded_player(factory)
    first = post(client, token_for, player, WITHDRAW, BODY, key="wd-alias")
    again = post(client, token_for, player, "/api/withdraw/request", BODY, key="wd-alias")
    assert again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert wallet_of(player.id) == (70_00, 30_00)


def test_key_order_and_spacing_of_the_json_body_do_not_make_another_request(
    client, factory, token_for, gateway
):
    player = funded_player(factory)
    headers = {**token_for(player), "Idempotency-Key": "wd-json"}
    raw = b'{"amount": "30.00", "currency": "EUR", "method": "sandbox"}'
    reordered = b'{ "method":"sandbox","currency":"EUR","amount":"30.00" }'
    first = client.post(WITHDRAW, data=raw, headers=headers, content_type="application/json")
    again = client.post(WITHDRAW, data=reordered, headers=headers, content_type="application/json")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert wallet_of(player.id) == (70_00, 30_00)


def test_the_same_key_with_another_body_is_refused_and_moves_nothing(
    client, factory, token_for, gateway
):
    player = funded_player(factory)
    assert post(client, token_for, player, WITHDRAW, BODY, key="wd-2").status_code == 201
    other = post(client, token_for, player, WITHDRAW, {**BODY, "amount": "40.00"}, key="wd-2")

    assert other.status_code == 422
    body = other.get_json()
    assert (body["success"], body["status"], body["code"]) == (False, 422, "IDEMPOTENCY_KEY_REUSED")
    assert len(payments_of(player.id, "withdrawal")) == 1
    assert wallet_of(player.id) == (70_00, 30_00)


def test_the_same_key_on_another_endpoint_is_refused(client, factory, token_for, gateway):
    player = funded_player(factory)
    created = post(client, token_for, player, WITHDRAW, BODY, key="wd-3").get_json()["data"]
    cancel = f"/api/withdrawals/{created['transaction_id']}/cancel"
    refused = post(client, token_for, player, cancel, key="wd-3")
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert payments_of(player.id, "withdrawal")[0].status == "pending"
    assert wallet_of(player.id) == (70_00, 30_00)


def test_a_retried_cancel_releases_the_hold_once(client, factory, token_for, gateway):
    allow_withdrawal_reversal(factory)
    player = funded_player(factory)
    created = post(client, token_for, player, WITHDRAW, BODY).get_json()["data"]
    cancel = f"/api/withdraw/{created['transaction_id']}/cancel"
    first = post(client, token_for, player, cancel, key="cancel-1")
    again = post(client, token_for, player, cancel, key="cancel-1")
    assert first.status_code == again.status_code == 200
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    # Without the key a second cancel is a fresh request: the state machine refuses it.
    assert post(client, token_for, player, cancel).status_code == 409
    assert wallet_of(player.id) == (100_00, 0)
    assert ledger_types(player.id) == ["deposit", "withdrawal_hold", "withdrawal_release"]
    reconcile_clean()


def test_without_a_key_every_request_is_a_new_withdrawal(client, factory, token_for, gateway):
    player = funded_player(factory)
    assert post(client, token_for, player, WITHDRAW, BODY).status_code == 201
    assert post(client, token_for, player, WITHDRAW, BODY).status_code == 201
    assert wallet_of(player.id) == (40_00, 60_00)
    assert key_rows(player.id) == []


# --------------------------------------------------------------------------- the key itself


@pytest.mark.parametrize(
    "key",
    ["", "   ", "k" * 151, "tab\there", "caf\u00e9"],
    ids=["empty", "blank", "151-chars", "control-char", "non-ascii"],
)
def test_a_bad_key_is_a_validation_error_and_moves_nothing(
    client, factory, token_for, gateway, key
):
    player = funded_player(factory)
    response = post(client, token_for, player, WITHDRAW, BODY, key=key)
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert wallet_of(player.id) == (100_00, 0)
    assert payments_of(player.id, "withdrawal") == []


def test_a_key_of_150_printable_characters_is_accepted(client, factory, token_for, gateway):
    player = funded_player(factory)
    key = ("a b~!" * 30)[:150]
    assert post(client, token_for, player, WITHDRAW, BODY, key=key).status_code == 201
    again = post(client, token_for, player, WITHDRAW, BODY, key=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [r.key for r in key_rows(player.id)] == [key]


def test_keys_belong_to_their_caller(client, factory, token_for, gateway):
    alice, bob = funded_player(factory), funded_player(factory)
    a = post(client, token_for, alice, WITHDRAW, BODY, key="shared")
    b = post(client, token_for, bob, WITHDRAW, {**BODY, "amount": "20.00"}, key="shared")
    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b.headers
    assert wallet_of(alice.id) == (70_00, 30_00)
    assert wallet_of(bob.id) == (80_00, 20_00)


def test_an_expired_key_is_free_again_and_the_purge_deletes_only_expired_keys(
    client, factory, token_for, gateway
):
    player = funded_player(factory)
    assert post(client, token_for, player, WITHDRAW, BODY, key="old").status_code == 201
    assert post(client, token_for, player, WITHDRAW, BODY, key="kept").status_code == 201
    with atomic():
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.key == "old")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    # 24 h later the key names a new request, even with another body.
    again = post(client, token_for, player, WITHDRAW, {**BODY, "amount": "10.00"}, key="old")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert wallet_of(player.id) == (30_00, 70_00)

    with atomic():
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.key == "kept")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert idempotency.purge_expired() == 1
    assert [r.key for r in key_rows(player.id)] == ["old"]


def test_a_fresh_key_expires_after_a_day(client, factory, token_for, gateway):
    player = funded_player(factory)
    before = utcnow()
    post(client, token_for, player, WITHDRAW, BODY, key="ttl")
    (row,) = key_rows(player.id)
    assert timedelta(hours=24) <= row.expires_at - before < timedelta(hours=24, minutes=1)
    assert (row.response_status, row.operation) == (201, "withdrawal.request")


# --------------------------------------------------------------------------- what is stored


def test_a_refusal_is_replayed_even_after_the_cause_is_gone(client, factory, token_for, gateway):
    player = funded_player(factory, cash=20_00)
    first = post(client, token_for, player, WITHDRAW, BODY, key="poor")
    assert first.status_code == 400
    assert first.get_json()["code"] == "INSUFFICIENT_BALANCE"
    fund(player.id, 100_00)
    again = post(client, token_for, player, WITHDRAW, BODY, key="poor")
    assert again.status_code == 400
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert wallet_of(player.id) == (120_00, 0)
    # A new key is a new request.
    assert post(client, token_for, player, WITHDRAW, BODY, key="rich").status_code == 201
    assert wallet_of(player.id) == (90_00, 30_00)


def test_a_body_the_schema_refuses_is_not_stored(client, factory, token_for, gateway):
    player = funded_player(factory)
    bad = post(client, token_for, player, WITHDRAW, {**BODY, "amount": None}, key="typo")
    assert bad.status_code == 400
    assert bad.get_json()["errors"][0]["field"] == "amount"
    assert key_rows(player.id) == []
    fixed = post(client, token_for, player, WITHDRAW, BODY, key="typo")
    assert fixed.status_code == 201
    assert wallet_of(player.id) == (70_00, 30_00)


@pytest.fixture
def failing_withdrawal_hook(monkeypatch):
    """A dependency of the withdrawal transaction that fails after the hold was written."""
    calls: list[str] = []
    failure: list[BaseException] = []

    def hook(txn):
        calls.append(txn.public_id)
        if failure:
            raise failure.pop()

    hooks = payment_hooks.withdrawal_requested
    monkeypatch.setattr(hooks, "_hooks", [*hooks._hooks, hook])
    return failure


@pytest.mark.parametrize(
    ("failure", "status"),
    [(ServiceUnavailable("The AML service is down"), 503), (RuntimeError("a bug"), 500)],
    ids=["outage", "crash"],
)
def test_a_failed_attempt_stores_nothing_and_its_retry_runs_again(
    client, factory, token_for, gateway, failing_withdrawal_hook, failure, status
):
    player = funded_player(factory)
    failing_withdrawal_hook.append(failure)
    failed = post(client, token_for, player, WITHDRAW, BODY, key="flaky")
    assert failed.status_code == status
    # The hold, the payment and the key were one transaction: all of it rolled back.
    assert wallet_of(player.id) == (100_00, 0)
    assert payments_of(player.id, "withdrawal") == []
    assert key_rows(player.id) == []

    retried = post(client, token_for, player, WITHDRAW, BODY, key="flaky")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert wallet_of(player.id) == (70_00, 30_00)
    assert ledger_types(player.id) == ["deposit", "withdrawal_hold"]
    reconcile_clean()


# --------------------------------------------------------------------------- deposits (two phases)

DEPOSIT = {"amount": "50.00", "currency": "EUR", "method": "sandbox"}


def test_a_retried_deposit_opens_one_payment(client, factory, token_for, gateway):
    player = factory.player()
    first = post(client, token_for, player, "/api/payment/deposit", DEPOSIT, key="dep-1")
    again = post(client, token_for, player, "/api/payment/create", DEPOSIT, key="dep-1")
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [p.status for p in payments_of(player.id, "deposit")] == ["pending"]
    other = post(
        client, token_for, player, "/api/payment/deposit", {**DEPOSIT, "amount": "60"}, key="dep-1"
    )
    assert other.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(payments_of(player.id, "deposit")) == 1
    (row,) = key_rows(player.id)
    assert (row.response_status, row.locked_until, row.claim_token) == (201, None, None)


def test_a_deposit_the_gateway_could_not_open_is_not_stored_and_its_retry_runs_again(
    client, factory, token_for
):
    sandbox_gateway(code="cards", adapter="stripe")  # no API secret: the gateway call fails
    player = factory.player()
    body = {**DEPOSIT, "method": "cards"}
    failed = post(client, token_for, player, "/api/payment/deposit", body, key="dep-down")
    assert failed.status_code == 503
    assert key_rows(player.id) == []
    with atomic():
        db.session.execute(
            sa.update(PaymentGateway)
            .where(PaymentGateway.code == "cards")
            .values(adapter="sandbox")
        )
    retried = post(client, token_for, player, "/api/payment/deposit", body, key="dep-down")
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert [p.status for p in payments_of(player.id, "deposit")] == ["failed", "pending"]
    assert ledger_types(player.id) == []


def _running_deposit(app, user_id: int, key: str, locked_until) -> None:
    """The key row a deposit run leaves between its claim and its answer (or after a crash)."""
    with app.test_request_context("/api/payment/deposit", method="POST", json=DEPOSIT):
        fingerprint = idempotency._fingerprint("payment.deposit")
    with atomic():
        db.session.add(
            IdempotencyKey(
                user_id=user_id,
                key=key,
                operation="payment.deposit",
                fingerprint=fingerprint,
                path="/api/payment/deposit",
                locked_until=locked_until,
                claim_token="crashed-run",
                expires_at=utcnow() + timedelta(hours=24),
            )
        )


def test_a_deposit_still_running_answers_409_with_retry_after_then_is_taken_over_after_its_lease(
    app, client, factory, token_for, gateway
):
    player = factory.player()
    _running_deposit(app, player.id, "dep-run", utcnow() + timedelta(seconds=30))
    busy = post(client, token_for, player, "/api/payment/deposit", DEPOSIT, key="dep-run")
    assert busy.status_code == 409
    assert busy.get_json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert busy.headers["Retry-After"] == "1"
    assert payments_of(player.id, "deposit") == []
    # Another body under the running key is still "another request".
    other = post(
        client, token_for, player, "/api/payment/deposit", {**DEPOSIT, "amount": "9"}, key="dep-run"
    )
    assert other.status_code == 422

    with atomic():
        db.session.execute(
            sa.update(IdempotencyKey)
            .where(IdempotencyKey.key == "dep-run")
            .values(locked_until=utcnow() - timedelta(seconds=1))
        )
    taken = post(client, token_for, player, "/api/payment/deposit", DEPOSIT, key="dep-run")
    assert taken.status_code == 201
    assert len(payments_of(player.id, "deposit")) == 1
    (row,) = key_rows(player.id)
    assert (row.response_status, row.claim_token) == (201, None)


# --------------------------------------------------------------------------- other endpoints


def test_a_retried_tournament_join_charges_the_fee_once(client, factory, token_for):
    now = utcnow()
    admin = factory.staff("admin")
    spec = {
        "currency": "EUR",
        "starts_at": now - timedelta(minutes=1),
        "ends_at": now + timedelta(hours=1),
        "entry": "opt_in",
        "entry_fee": "2.50",
        "prizes": ["10.00"],
    }
    sprint = tournaments.create({**spec, "name": "Sprint"}, actor=admin)
    marathon = tournaments.create({**spec, "name": "Marathon"}, actor=admin)
    player = funded_player(factory, cash=10_00)
    first = post(client, token_for, player, f"/api/tournaments/{sprint.id}/join", key="join-1")
    again = post(client, token_for, player, f"/api/tournaments/{sprint.id}/join", key="join-1")
    assert first.status_code == again.status_code == 200
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = post(client, token_for, player, f"/api/tournaments/{marathon.id}/join", key="join-1")
    assert other.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert wallet_of(player.id) == (7_50, 0)
    assert ledger_types(player.id) == ["deposit", "tournament_fee"]
    reconcile_clean()


def test_a_staff_adjustment_keeps_its_contract_and_refuses_another_amount_under_the_key(
    client, factory, token_for
):
    player = factory.player()
    manager, admin = factory.staff("manager"), factory.staff("admin")
    url = f"/api/admin/users/{player.id}/adjust-balance"
    credit = {"amount": "5", "reason": "goodwill"}
    first = post(client, token_for, manager, url, credit, key="click")
    again = post(client, token_for, manager, url, credit, key="click")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["data"]["replayed"] is False
    assert again.get_json()["data"] == {**first.get_json()["data"], "replayed": True}
    assert again.headers["Idempotent-Replayed"] == "true"

    other = post(client, token_for, manager, url, {**credit, "amount": "50"}, key="click")
    assert other.status_code == 422
    assert other.get_json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    manual = post(
        client,
        token_for,
        manager,
        "/api/admin/payments/manual-adjustment",
        {**credit, "user_id": player.id},
        key="click",
    )
    assert manual.status_code == 422
    # Another staff member's key of the same name is theirs.
    assert post(client, token_for, admin, url, credit, key="click").status_code == 201
    assert wallet_of(player.id) == (10_00, 0)
    assert ledger_types(player.id) == ["adjustment", "adjustment"]
    reconcile_clean()


def test_a_refused_staff_adjustment_is_replayed_as_it_was(client, factory, token_for):
    player = factory.player()
    manager = factory.staff("manager")
    url = f"/api/admin/users/{player.id}/adjust-balance"
    debit = {"amount": "-5", "reason": "chargeback"}
    first = post(client, token_for, manager, url, debit, key="debit")
    assert first.status_code == 400
    assert first.get_json()["code"] == "INSUFFICIENT_BALANCE"
    fund(player.id, 10_00)
    again = post(client, token_for, manager, url, debit, key="debit")
    assert (again.status_code, again.get_data()) == (400, first.get_data())
    assert wallet_of(player.id) == (10_00, 0)


# --------------------------------------------------------------------------- contract


MONEY_ENDPOINTS = [
    ("/api/payment/deposit", "post"),
    ("/api/payment/create", "post"),
    ("/api/withdrawals/request", "post"),
    ("/api/withdraw/request", "post"),
    ("/api/withdrawals/{ident}/cancel", "post"),
    ("/api/withdraw/{ident}/cancel", "post"),
    ("/api/lottery/draws/{draw_id}/tickets", "post"),
    ("/api/tournaments/{tournament_id}/join", "post"),
    ("/api/admin/users/{user_id}/adjust-balance", "post"),
    ("/api/admin/payments/manual-adjustment", "post"),
]


def test_the_openapi_document_names_the_header_on_every_money_endpoint(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    for path, method in MONEY_ENDPOINTS:
        params = paths[path][method].get("parameters", [])
        headers = [(p["in"], p["required"]) for p in params if p["name"] == "Idempotency-Key"]
        assert headers == [("header", False)], path


def test_browsers_may_send_the_key_and_read_the_replay_headers(client):
    origin = "http://localhost:3000"
    preflight = client.options(
        WITHDRAW,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )
    allowed = preflight.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "idempotency-key" in allowed
    answer = client.get("/api/status", headers={"Origin": origin})
    exposed = {
        h.strip().lower() for h in answer.headers["Access-Control-Expose-Headers"].split(",")
    }
    assert {"idempotent-replayed", "retry-after", "x-correlation-id", "allow"} <= exposed


# --------------------------------------------------------------------------- concurrency


def _race(app, n: int, send) -> list:
    barrier = threading.Barrier(n)
    results: list = []

    def run():
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            try:
                results.append(send(client))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _outcome(response):
    replayed = response.headers.get("Idempotent-Replayed") == "true"
    return response.status_code, response.get_json().get("code"), replayed


@pytest.mark.postgres
def test_racing_withdrawals_with_one_key_make_one_withdrawal_and_one_hold(
    app, committed_db, requires_postgres, factory, token_for
):
    sandbox_gateway()
    player = funded_player(factory)
    headers = {**token_for(player), "Idempotency-Key": "race"}
    db.session.remove()

    def send(client):
        response = client.post(WITHDRAW, headers=headers, json=BODY)
        return _outcome(response), response.get_json().get("data")

    results = _race(app, 8, send)

    assert len(results) == 8
    outcomes = [o for o, _ in results]
    assert outcomes.count((201, None, False)) == 1, outcomes
    assert all(
        o in {(201, None, True), (409, "IDEMPOTENCY_KEY_IN_USE", False)}
        for o in outcomes
        if o != (201, None, False)
    ), outcomes
    assert len({str(d) for o, d in results if o[0] == 201}) == 1  # one answer, replayed
    assert len(payments_of(player.id, "withdrawal")) == 1
    assert wallet_of(player.id) == (70_00, 30_00)
    assert ledger_types(player.id).count("withdrawal_hold") == 1
    reconcile_clean()


@pytest.mark.postgres
def test_racing_deposits_with_one_key_open_one_payment(
    app, committed_db, requires_postgres, factory, token_for
):
    sandbox_gateway()
    player = factory.player()
    headers = {**token_for(player), "Idempotency-Key": "race-dep"}
    db.session.remove()

    results = _race(
        app, 6, lambda c: _outcome(c.post("/api/payment/deposit", headers=headers, json=DEPOSIT))
    )

    assert results.count((201, None, False)) == 1, results
    assert all(
        o in {(201, None, True), (409, "IDEMPOTENCY_KEY_IN_USE", False)}
        for o in results
        if o != (201, None, False)
    ), results
    assert len(payments_of(player.id, "deposit")) == 1


@pytest.mark.postgres
def test_a_request_waiting_on_a_key_held_too_long_answers_409_or_the_replay_never_an_error(
    app, committed_db, requires_postgres, factory, token_for
):
    """Another transaction holds the key (a first request still running); the second waits on
    the unique index. Past the lock timeout it is 409 IN_USE; if the holder commits first, the
    replay of its answer. Never a 5xx, never a second movement."""
    sandbox_gateway()
    player = funded_player(factory)
    headers = {**token_for(player), "Idempotency-Key": "slow"}
    with app.test_request_context(WITHDRAW, method="POST", json=BODY):
        fingerprint = idempotency._fingerprint("withdrawal.request")
    db.session.remove()
    stored = '{"data":{"id":0},"success":true}\n'
    holder = db.engine.connect()
    tx = holder.begin()
    holder.execute(
        sa.insert(IdempotencyKey).values(
            user_id=player.id,
            key="slow",
            operation="withdrawal.request",
            fingerprint=fingerprint,
            path=WITHDRAW,
            response_status=201,
            response_body=stored,
            created_at=utcnow(),
            expires_at=utcnow() + timedelta(hours=24),
        )
    )
    release = threading.Timer(3.0, lambda: (tx.commit(), holder.close()))
    release.start()
    try:
        (response,) = _race(app, 1, lambda c: c.post(WITHDRAW, headers=headers, json=BODY))
    finally:
        release.join()
    if response.status_code == 409:
        assert response.get_json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
        assert int(response.headers["Retry-After"]) >= 1
    else:
        assert (response.status_code, response.get_data(as_text=True)) == (201, stored)
        assert response.headers["Idempotent-Replayed"] == "true"
    assert payments_of(player.id, "withdrawal") == []
    assert wallet_of(player.id) == (100_00, 0)


def test_the_purge_runs_every_hour():
    assert ("app.core.idempotency.purge_expired", 3600, "default") in PERIODIC_JOBS
