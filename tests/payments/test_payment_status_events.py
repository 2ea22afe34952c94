"""Every status a deposit or withdrawal takes reaches the player's room as
``payment:status:update``, durably (through the outbox), once the change committed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import OutboxMessage
from app.identity.models import User
from app.payments.jobs import expire_pending_deposits
from app.payments.models import PaymentTransaction
from tests.moneykit import fund
from tests.payments_helpers import (
    allow_withdrawal_reversal,
    sandbox_event,
    signed_sandbox,
    start_deposit,
)

EVENT = "payment:status:update"


def status_events(events, transaction_id: str) -> list:
    return [e for e in events if e.name == EVENT and e.data["transaction_id"] == transaction_id]


def statuses(events, transaction_id: str) -> list[tuple[str | None, str]]:
    return [
        (e.data["previous_status"], e.data["status"]) for e in status_events(events, transaction_id)
    ]


def webhook(client, body: dict):
    raw, headers = signed_sandbox(body)
    return client.post("/api/payment/webhook/sandbox", data=raw, headers=headers)


def verified_player(factory, cash: int):
    player = factory.player()
    with atomic():
        db.session.get(User, player.id).kyc_status = "approved"
    fund(player.id, cash)
    return player


def withdraw(client, headers, amount, **extra):
    response = client.post(
        "/api/withdrawals/request",
        headers=headers,
        json={"amount": amount, "method": "sandbox", "currency": "EUR", **extra},
    )
    assert response.status_code == 201, response.json
    return response.json["data"]


def test_a_paid_deposit_announces_pending_then_completed_to_the_player_room(
    client, factory, token_for, gateway, wire, events
):
    player = factory.player()
    data = start_deposit(client, token_for(player), "50.00")
    client.post(f"/sandbox/checkout/{data['transaction_id']}/pay")
    wire.flush()
    created, completed = status_events(events, data["transaction_id"])
    assert created.room == completed.room == f"user:{player.id}"
    timestamp = completed.data.pop("timestamp")
    assert timestamp.startswith(str(utcnow().year))
    assert completed.data == {
        "type": "deposit",
        "id": data["id"],
        "transaction_id": data["transaction_id"],
        "status": "completed",
        "previous_status": "pending",
        "amount": "50.00",
        "currency": "EUR",
        "reason": None,
    }
    assert (created.data["status"], created.data["previous_status"]) == ("pending", None)
    # After the wallet credit: a client that hears "completed" can read the new balance.
    names = [e.name for e in events]
    assert names.index("balance.update") < names.index(EVENT, names.index("balance.update"))


def test_declined_and_expired_deposits_are_announced_with_their_reason(
    client, factory, token_for, gateway, events
):
    player = factory.player()
    headers = token_for(player)
    declined = start_deposit(client, headers, "20.00")
    assert webhook(client, sandbox_event("payment.failed", declined)).status_code == 200
    (_, failed) = status_events(events, declined["transaction_id"])
    assert failed.data["status"] == "failed"
    assert failed.data["reason"] == "declined by the payment provider"

    abandoned = start_deposit(client, headers, "30.00")
    with atomic():
        db.session.execute(
            update(PaymentTransaction)
            .where(PaymentTransaction.public_id == abandoned["transaction_id"])
            .values(created_at=utcnow() - timedelta(hours=2))
        )
    assert expire_pending_deposits() == 1
    (_, expired) = status_events(events, abandoned["transaction_id"])
    assert expired.room == f"user:{player.id}"
    assert expired.data["status"] == "expired"
    assert expired.data["amount"] == "30.00"
    assert expired.data["reason"] == "not paid within 60 minutes"
    # Paid after all: announced once, a replay announces nothing.
    paid = sandbox_event("payment.succeeded", abandoned)
    webhook(client, paid)
    webhook(client, paid)
    assert statuses(events, abandoned["transaction_id"]) == [
        (None, "pending"),
        ("pending", "expired"),
        ("expired", "completed"),
    ]


def test_a_withdrawal_announces_each_step_to_payout(
    client, factory, token_for, gateway, wire, events
):
    player = verified_player(factory, 100_00)
    manager = factory.staff("manager")
    txn = withdraw(client, token_for(player), "40.00")
    client.post(f"/api/admin/payments/withdrawals/{txn['id']}/approve", headers=token_for(manager))
    wire.flush()
    assert statuses(events, txn["transaction_id"]) == [
        (None, "pending"),
        ("pending", "approved"),
        ("approved", "processing"),
        ("processing", "completed"),
    ]
    last = status_events(events, txn["transaction_id"])[-1]
    assert last.room == f"user:{player.id}"
    assert last.data["type"] == "withdrawal"
    assert (last.data["amount"], last.data["currency"]) == ("40.00", "EUR")


def test_cancelled_rejected_and_failed_withdrawals_are_announced(
    client, factory, token_for, gateway, wire, events
):
    player = verified_player(factory, 300_00)
    headers = token_for(player)
    manager = token_for(factory.staff("manager"))
    allow_withdrawal_reversal(factory)
    cancelled = withdraw(client, headers, "10.00")
    client.post(f"/api/withdrawals/{cancelled['id']}/cancel", headers=headers)
    rejected = withdraw(client, headers, "20.00")
    client.post(
        f"/api/admin/payments/withdrawals/{rejected['id']}/reject",
        headers=manager,
        json={"reason": "Name mismatch"},
    )
    failed = withdraw(client, headers, "30.00", details={"simulate": "failure"})
    client.post(f"/api/admin/payments/withdrawals/{failed['id']}/approve", headers=manager)
    wire.flush()
    assert statuses(events, cancelled["transaction_id"])[-1] == ("pending", "cancelled")
    (_, rejection) = status_events(events, rejected["transaction_id"])
    assert (rejection.data["status"], rejection.data["reason"]) == ("rejected", "Name mismatch")
    assert statuses(events, failed["transaction_id"])[-1] == ("processing", "failed")
    assert status_events(events, failed["transaction_id"])[-1].data["reason"] == (
        "the payment provider could not pay out"
    )


def test_status_events_are_written_to_the_outbox_with_the_change(
    client, factory, token_for, gateway
):
    # Durable: the event is a row of the payment's own transaction, so it survives a Redis
    # outage at commit time (the relay delivers it once Redis is back).
    player = factory.player()
    data = start_deposit(client, token_for(player))
    rows = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "event", OutboxMessage.name == EVENT)
    ).all()
    mine = [r for r in rows if r.payload["transaction_id"] == data["transaction_id"]]
    assert len(mine) == 1
    assert mine[0].target == f"user:{player.id}"
    assert mine[0].payload["status"] == "pending"


def test_a_refused_change_announces_nothing(client, factory, token_for, gateway, events):
    player = verified_player(factory, 10_00)
    refused = client.post(
        "/api/withdrawals/request",
        headers=token_for(player),
        json={"amount": "50.00", "method": "sandbox", "currency": "EUR"},
    )
    assert refused.json["code"] == "INSUFFICIENT_BALANCE"
    data = start_deposit(client, token_for(player))
    wrong = webhook(client, sandbox_event("payout.succeeded", data))
    assert wrong.status_code == 409
    assert [e.data["status"] for e in events if e.name == EVENT] == ["pending"]
