"""Deposits nobody pays expire: they stop counting toward deposit limits, and a payment that
arrives after all is still credited, once."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from app.core.audit import AuditLog
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.schedule import PERIODIC_JOBS
from app.payments import deposits
from app.payments.jobs import expire_pending_deposits
from app.payments.models import PaymentTransaction, PaymentWebhook
from app.wallet.models import LedgerTransaction
from tests.moneykit import fund, reconcile_clean
from tests.payments_helpers import (
    cash_and_held,
    sandbox_event,
    signed_sandbox,
    start_deposit,
)

TTL = timedelta(minutes=60)  # DEPOSIT_PENDING_TTL_MINUTES' default


def age(transaction_id: str, by: timedelta) -> None:
    """Pretend the payment was created ``by`` ago."""
    with atomic():
        db.session.execute(
            update(PaymentTransaction)
            .where(PaymentTransaction.public_id == transaction_id)
            .values(created_at=utcnow() - by)
        )


def payment(transaction_id: str) -> PaymentTransaction:
    db.session.expire_all()
    return db.session.scalars(
        select(PaymentTransaction).where(PaymentTransaction.public_id == transaction_id)
    ).one()


def webhook(client, body: dict):
    raw, headers = signed_sandbox(body)
    return client.post("/api/payment/webhook/sandbox", data=raw, headers=headers)


def audit_actions(transaction_id: str) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditLog.action)
            .where(AuditLog.target_type == "payment", AuditLog.target_id == transaction_id)
            .order_by(AuditLog.id)
        )
    )


def test_the_expiry_job_expires_only_pending_deposits_older_than_the_ttl(
    client, factory, token_for, gateway
):
    player = factory.player()
    headers = token_for(player)
    old = start_deposit(client, headers, "20.00")
    fresh = start_deposit(client, headers, "30.00")
    paid = start_deposit(client, headers, "40.00")
    assert webhook(client, sandbox_event("payment.succeeded", paid)).status_code == 200
    declined = start_deposit(client, headers, "10.00")
    assert webhook(client, sandbox_event("payment.failed", declined)).status_code == 200
    for data in (old, paid, declined):
        age(data["transaction_id"], TTL + timedelta(minutes=1))
    age(fresh["transaction_id"], TTL - timedelta(minutes=1))
    verified = factory.player()
    with atomic():
        db.session.get(type(verified), verified.id).kyc_status = "approved"
    fund(verified.id, 100_00)
    withdrawal = client.post(
        "/api/withdrawals/request",
        headers=token_for(verified),
        json={"amount": "10.00", "method": "sandbox", "currency": "EUR"},
    ).json["data"]
    age(withdrawal["transaction_id"], TTL * 10)

    assert expire_pending_deposits() == 1
    assert expire_pending_deposits() == 0  # a rerun finds nothing left

    expired = payment(old["transaction_id"])
    assert expired.status == "expired"
    assert expired.reason == "not paid within 60 minutes"
    assert expired.processed_at is not None
    assert payment(fresh["transaction_id"]).status == "pending"
    assert payment(paid["transaction_id"]).status == "completed"
    assert payment(declined["transaction_id"]).status == "failed"
    assert payment(withdrawal["transaction_id"]).status == "pending"  # never expires
    assert audit_actions(old["transaction_id"]) == [
        "payment.deposit.create",
        "payment.deposit.expire",
    ]
    row = db.session.scalars(
        select(AuditLog).where(
            AuditLog.action == "payment.deposit.expire",
            AuditLog.target_id == old["transaction_id"],
        )
    ).one()
    assert row.actor_id is None
    assert row.before == {"status": "pending"}
    assert row.after["status"] == "expired"
    assert row.after["amount"] == "20.00"
    status = client.get(f"/api/payment/status/{old['transaction_id']}", headers=headers).json
    assert status["data"]["status"] == "expired"
    assert status["data"]["payment_url"] is None
    assert cash_and_held(player.id) == (40_00, 0)


def test_the_expiry_is_scheduled_and_its_ttl_is_a_setting(app, client, factory, token_for, gateway):
    assert ("app.payments.jobs.expire_pending_deposits", 300, "default") in PERIODIC_JOBS
    assert app.config["DEPOSIT_PENDING_TTL_MINUTES"] == 60
    data = start_deposit(client, token_for(factory.player()))
    age(data["transaction_id"], timedelta(minutes=11))
    original = app.config["DEPOSIT_PENDING_TTL_MINUTES"]
    try:
        app.config["DEPOSIT_PENDING_TTL_MINUTES"] = 0  # 0: deposits wait forever
        assert expire_pending_deposits() == 0
        app.config["DEPOSIT_PENDING_TTL_MINUTES"] = 10
        assert expire_pending_deposits() == 1
    finally:
        app.config["DEPOSIT_PENDING_TTL_MINUTES"] = original
    assert payment(data["transaction_id"]).reason == "not paid within 10 minutes"


def test_cli_expires_pending_deposits(runner, client, factory, token_for, gateway):
    data = start_deposit(client, token_for(factory.player()))
    age(data["transaction_id"], timedelta(minutes=31))
    kept = runner.invoke(args=["jackpotx", "deposits", "expire-pending"])
    assert kept.exit_code == 0, kept.output
    assert kept.output.strip() == "expired 0 deposit(s)"
    done = runner.invoke(args=["jackpotx", "deposits", "expire-pending", "--older-than", "30m"])
    assert done.exit_code == 0, done.output
    assert done.output.strip() == "expired 1 deposit(s)"
    assert payment(data["transaction_id"]).status == "expired"
    bad = runner.invoke(args=["jackpotx", "deposits", "expire-pending", "--older-than", "soon"])
    assert bad.exit_code == 2


def set_daily_deposit_limit(client, headers, amount):
    response = client.post(
        "/api/responsible-gaming/set-limit",
        headers=headers,
        json={"type": "deposit", "period": "daily", "amount": amount},
    )
    assert response.status_code == 200, response.json


def used_of_deposit_limit(client, headers) -> str:
    limits = client.get("/api/responsible-gaming/limits", headers=headers).json["data"]["limits"]
    (limit,) = [item for item in limits if item["type"] == "deposit"]
    return limit["used"]


def deposit_attempt(client, headers, amount):
    return client.post(
        "/api/payment/deposit",
        headers=headers,
        json={"amount": amount, "currency": "EUR", "method": "sandbox"},
    )


def test_an_abandoned_deposit_stops_counting_toward_the_deposit_limit(
    client, factory, token_for, gateway
):
    player = factory.player()
    headers = token_for(player)
    set_daily_deposit_limit(client, headers, "100.00")
    abandoned = start_deposit(client, headers, "80.00")
    assert used_of_deposit_limit(client, headers) == "80.00"
    assert deposit_attempt(client, headers, "30.00").json["code"] == "LIMIT_EXCEEDED"

    # Past its TTL it no longer counts, even before the job has recorded it as expired.
    age(abandoned["transaction_id"], TTL + timedelta(seconds=1))
    assert payment(abandoned["transaction_id"]).status == "pending"
    assert used_of_deposit_limit(client, headers) == "0.00"
    assert expire_pending_deposits() == 1
    assert used_of_deposit_limit(client, headers) == "0.00"
    assert deposit_attempt(client, headers, "100.00").status_code == 201
    assert deposit_attempt(client, headers, "0.01").json["code"] == "LIMIT_EXCEEDED"


def test_a_late_payment_credits_an_expired_deposit_exactly_once(
    client, factory, token_for, gateway, wire
):
    player = factory.player()
    headers = token_for(player)
    set_daily_deposit_limit(client, headers, "100.00")
    data = start_deposit(client, headers, "50.00")
    age(data["transaction_id"], TTL * 2)
    assert expire_pending_deposits() == 1

    # The sandbox's own checkout is closed once the deposit expired ...
    path = urlsplit(data["payment_url"]).path
    assert client.post(f"{path}/pay").status_code == 409
    assert wire.outbox == []
    # ... but a gateway that took the player's money says so later: it is credited.
    paid = sandbox_event("payment.succeeded", data)
    first = webhook(client, paid)
    assert first.status_code == 200, first.json
    assert first.json["data"]["verdict"] == "applied"
    again = webhook(client, paid)
    assert again.status_code == 200, again.json
    assert again.json["data"]["verdict"] == "duplicate"

    assert cash_and_held(player.id) == (50_00, 0)
    credits = db.session.scalar(
        select(func.count(LedgerTransaction.id)).where(
            LedgerTransaction.user_id == player.id, LedgerTransaction.type == "deposit"
        )
    )
    assert credits == 1
    txn = payment(data["transaction_id"])
    assert txn.status == "completed"
    assert txn.reason is None
    assert audit_actions(data["transaction_id"]) == [
        "payment.deposit.create",
        "payment.deposit.expire",
        "payment.deposit.complete",
    ]
    completion = db.session.scalars(
        select(AuditLog).where(
            AuditLog.action == "payment.deposit.complete",
            AuditLog.target_id == data["transaction_id"],
        )
    ).one()
    assert completion.before == {"status": "expired"}
    verdicts = db.session.scalars(
        select(PaymentWebhook.verdict)
        .where(PaymentWebhook.transaction_public_id == data["transaction_id"])
        .order_by(PaymentWebhook.id)
    ).all()
    assert verdicts == ["applied", "duplicate"]
    # Paid, it counts toward the limit again.
    assert used_of_deposit_limit(client, headers) == "50.00"
    reconcile_clean()


def test_a_late_decline_of_an_expired_deposit_is_recorded_and_moves_nothing(
    client, factory, token_for, gateway
):
    player = factory.player()
    data = start_deposit(client, token_for(player), "50.00")
    age(data["transaction_id"], TTL * 2)
    assert expire_pending_deposits() == 1
    answer = webhook(client, sandbox_event("payment.failed", data))
    assert answer.status_code == 200, answer.json
    assert answer.json["data"]["verdict"] == "applied"
    assert payment(data["transaction_id"]).status == "failed"
    assert cash_and_held(player.id) == (0, 0)
    # Declined is final: a success after it goes to staff, not to the wallet.
    late = webhook(client, sandbox_event("payment.succeeded", data))
    assert late.status_code == 409
    assert cash_and_held(player.id) == (0, 0)


def test_a_deposit_paid_while_the_job_runs_is_not_expired(
    client, factory, token_for, gateway, monkeypatch
):
    player = factory.player()
    data = start_deposit(client, token_for(player), "50.00")
    age(data["transaction_id"], TTL * 2)
    held = payment(data["transaction_id"])  # a copy in the session, read before the payment
    assert held.status == "pending"
    real_lock = deposits.lock_one

    def paid_meanwhile(model, *criteria, **kw):
        # The webhook commits between the job's query and its row lock (another session:
        # the copy this one holds is not updated).
        db.session.execute(
            update(PaymentTransaction)
            .where(PaymentTransaction.public_id == data["transaction_id"])
            .values(status="completed")
            .execution_options(synchronize_session=False)
        )
        return real_lock(model, *criteria, **kw)

    monkeypatch.setattr(deposits, "lock_one", paid_meanwhile)
    assert expire_pending_deposits() == 0
    assert payment(data["transaction_id"]).status == "completed"
    assert audit_actions(data["transaction_id"]) == ["payment.deposit.create"]
