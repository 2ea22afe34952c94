"""Withdrawals queue with risk context and dual approval; deposits and ledger lists."""

from __future__ import annotations

from sqlalchemy import select

from app.compliance import risk
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.payments.models import PaymentTransaction
from app.wallet.models import Wallet
from tests.console.seeding import verified_player, withdrawal
from tests.moneykit import fund

HX = {"HX-Request": "true"}


def _audits(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))


def _wallet(user_id: int) -> tuple[int, int]:
    db.session.expire_all()
    w = db.session.scalar(select(Wallet).where(Wallet.user_id == user_id))
    return w.balance, w.held_balance


def test_the_queue_lists_pending_withdrawals_oldest_first_with_kyc_and_flags(
    signed_in, factory, gateway
):
    client, _ = signed_in("manager")
    calm = verified_player(factory, 500_00, username="calm_player")
    flagged = verified_player(factory, 500_00, username="flagged_player")
    older = withdrawal(calm, "50.00")
    newer = withdrawal(flagged, "60.00")
    with atomic():
        risk.flag("rapid_cashout", user_id=flagged.id, severity="high", reference="t1")
    done = withdrawal(calm, "10.00")
    from app.payments import withdrawals

    withdrawals.reject_withdrawal(done.id, factory.staff("admin"), "Duplicate request")
    html = client.get("/admin/withdrawals").get_data(as_text=True)
    assert html.index(f'id="withdrawal-row-{older.id}"') < html.index(
        f'id="withdrawal-row-{newer.id}"'
    )
    assert f'id="withdrawal-row-{done.id}"' not in html
    assert "KYC approved" in html
    assert "1 flag" in html
    assert "2 pending withdrawals" in html
    rejected = client.get("/admin/withdrawals?status=rejected").get_data(as_text=True)
    assert f'id="withdrawal-row-{done.id}"' in rejected
    assert "Duplicate request" in rejected


def test_the_withdrawal_page_shows_the_players_risk_context(signed_in, factory, gateway):
    client, _ = signed_in("manager")
    player = verified_player(factory, 300_00, username="context_player")
    txn = withdrawal(player, "120.00")
    with atomic():
        risk.flag("cashout_without_play", user_id=player.id, reference="t2")
    html = client.get(f"/admin/withdrawals/{txn.id}").get_data(as_text=True)
    assert "cashout without play" in html
    assert "No play ever." in html
    assert "held 120.00 EUR" in html  # the hold is visible next to the cash balance
    assert "0 of 1 approval" in html
    support, _ = signed_in("support")
    assert support.get(f"/admin/withdrawals/{txn.id}").status_code == 403


def test_a_large_withdrawal_waits_for_a_second_different_approver(
    signed_in, factory, gateway, payout_wire
):
    first, first_staff = signed_in("manager")
    second, second_staff = signed_in("admin")
    player = verified_player(factory, 3000_00)
    txn = withdrawal(player, "1500.00")
    url = f"/admin/withdrawals/{txn.id}/approve"
    one = first.post(url, data={"context": "row"}, headers=HX)
    html = one.get_data(as_text=True)
    assert f'<tr id="withdrawal-row-{txn.id}">' in html
    assert "1 of 2 approvals" in html
    assert "waiting for a different approver" in html
    assert "a different approver must confirm it" in html
    assert 'data-action="approve"' not in html  # the first approver cannot approve again
    assert payout_wire == []
    again = first.post(url, data={"context": "row"}, headers=HX)
    assert again.headers["HX-Retarget"] == "#modal-root"
    assert "already approved" in again.get_data(as_text=True)
    two = second.post(url, data={"context": "panel"}, headers=HX)
    assert 'id="withdrawal-panel"' in two.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(PaymentTransaction, txn.id).status == "processing"
    assert len(payout_wire) == 1  # the payout went to the gateway once
    approvals = _audits("payment.withdrawal.approve")
    assert [a.actor_id for a in approvals] == [first_staff.user.id, second_staff.user.id]


def test_rejecting_needs_a_reason_and_returns_the_held_funds(signed_in, factory, gateway):
    client, manager = signed_in("manager")
    player = verified_player(factory, 200_00)
    txn = withdrawal(player, "80.00")
    assert _wallet(player.id) == (120_00, 80_00)
    url = f"/admin/withdrawals/{txn.id}/reject"
    empty = client.post(url, data={"reason": "", "context": "row"}, headers=HX)
    assert "field-error" in empty.get_data(as_text=True)
    assert _wallet(player.id) == (120_00, 80_00)
    done = client.post(url, data={"reason": "Bonus abuse", "context": "row"}, headers=HX)
    html = done.get_data(as_text=True)
    assert "badge-rejected" in html
    assert "funds are back" in html
    assert _wallet(player.id) == (200_00, 0)
    (row,) = _audits("payment.withdrawal.reject")
    assert (row.actor_id, row.reason) == (manager.user.id, "Bonus abuse")


def test_support_may_not_open_the_queue_and_cannot_approve(signed_in, factory, gateway):
    player = verified_player(factory, 100_00)
    txn = withdrawal(player, "20.00")
    client, _ = signed_in("support")
    assert client.get("/admin/withdrawals").status_code == 403
    assert client.post(f"/admin/withdrawals/{txn.id}/approve", data={}).status_code == 403
    assert db.session.get(PaymentTransaction, txn.id).status == "pending"
    assert _audits("payment.withdrawal.approve") == []


def test_deposits_and_ledger_lists_filter_and_total(signed_in, factory, gateway):
    client, _ = signed_in("manager")
    alice = factory.player(username="alice_ledger")
    bob = factory.player(username="bob_ledger")
    fund(alice.id, 70_00)
    fund(bob.id, 5_00)
    from app.payments import deposits

    deposits.create_deposit(
        db.session.get(type(alice), alice.id), amount="25.00", currency="EUR", method="sandbox"
    )
    deposits = client.get("/admin/deposits?q=alice_ledger").get_data(as_text=True)
    assert "25.00 EUR" in deposits
    assert "bob_ledger" not in deposits
    ledger = client.get(f"/admin/transactions?user_id={alice.id}&type=deposit")
    html = ledger.get_data(as_text=True)
    assert "70.00 EUR" in html
    assert "bob_ledger" not in html
    assert (
        client.get("/admin/transactions?type=bet").get_data(as_text=True).count('id="ledger-row-')
        == 0
    )
    support, _ = signed_in("support")
    assert support.get("/admin/transactions").status_code == 200
    assert support.get("/admin/deposits").status_code == 403


def test_the_demo_data_leaves_a_kyc_submission_and_two_withdrawals_to_work_on(runner, signed_in):
    from app.compliance.models import KycSubmission

    for _ in range(2):  # idempotent
        result = runner.invoke(args=["jackpotx", "seed-demo"])
        assert result.exit_code == 0, result.output
    pending = list(
        db.session.scalars(select(KycSubmission).where(KycSubmission.status == "pending"))
    )
    assert [len(s.documents) for s in pending] == [2]
    withdrawals = list(
        db.session.scalars(
            select(PaymentTransaction).where(
                PaymentTransaction.type == "withdrawal", PaymentTransaction.status == "pending"
            )
        )
    )
    assert sorted(w.amount_minor for w in withdrawals) == [40_00, 60_00]
    client, _ = signed_in("manager")
    queue = client.get("/admin/withdrawals").get_data(as_text=True)
    assert "player2" in queue
    assert "player1" in client.get("/admin/kyc").get_data(as_text=True)
