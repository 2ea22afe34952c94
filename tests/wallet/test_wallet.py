"""The wallet service: every balance change is a balanced, idempotent ledger transaction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.core.bus import subscribe
from app.core.db import atomic
from app.core.errors import Conflict, InsufficientBalance, ValidationError
from app.core.extensions import db
from app.core.models import AuditLog
from app.wallet import ledger as wallet
from app.wallet.models import LedgerEntry, LedgerTransaction, Wallet
from tests.moneykit import fund, reconcile_clean


def _wallet(user_id: int, currency: str = "EUR") -> Wallet:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(Wallet).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )


def test_get_or_create_wallet_is_idempotent(factory):
    player = factory.player()
    first = wallet.get_or_create_wallet(player.id, "eur")
    second = wallet.get_or_create_wallet(player.id, "EUR")
    assert first.id == second.id
    assert (first.balance, first.bonus_balance, first.held_balance) == (0, 0, 0)


def test_post_writes_balanced_entries_and_moves_the_balance(factory):
    player = factory.player()
    with atomic():
        posting = wallet.post(
            player.id,
            "EUR",
            "deposit",
            cash_delta=50_00,
            source="payments",
            idempotency_key="dep-1",
            reference_type="payment",
            reference_id=7,
        )
    assert (posting.balance, posting.bonus_balance, posting.replayed) == (50_00, 0, False)
    entries = db.session.execute(
        sa.select(LedgerEntry.account, LedgerEntry.amount)
        .where(LedgerEntry.transaction_id == posting.transaction_id)
        .order_by(LedgerEntry.id)
    ).all()
    assert [tuple(e) for e in entries] == [("cash", 50_00), ("external:payments", -50_00)]
    assert _wallet(player.id).balance == 50_00
    reconcile_clean()


def test_same_key_same_movement_is_one_movement(factory):
    player = factory.player()
    for _ in range(3):
        with atomic():
            posting = wallet.post(
                player.id,
                "EUR",
                "deposit",
                cash_delta=10_00,
                source="payments",
                idempotency_key="dep-1",
            )
    assert posting.replayed
    assert _wallet(player.id).balance == 10_00
    assert db.session.scalar(sa.select(sa.func.count(LedgerTransaction.id))) == 1


def test_same_key_different_movement_is_a_conflict(factory):
    player = factory.player()
    fund(player.id, 10_00)
    with atomic():
        wallet.post(player.id, "EUR", "deposit", cash_delta=5_00, source="p", idempotency_key="k")
    with pytest.raises(Conflict), atomic():
        wallet.post(player.id, "EUR", "deposit", cash_delta=6_00, source="p", idempotency_key="k")
    # Another source may use the same key.
    with atomic():
        wallet.post(player.id, "EUR", "deposit", cash_delta=6_00, source="q", idempotency_key="k")
    assert _wallet(player.id).balance == 21_00


def test_debit_beyond_balance_is_refused_with_nothing_written(factory):
    player = factory.player()
    fund(player.id, 10_00)
    before = db.session.scalar(sa.select(sa.func.count(LedgerTransaction.id)))
    with pytest.raises(InsufficientBalance), atomic():
        wallet.post(
            player.id, "EUR", "adjustment", cash_delta=-10_01, source="a", idempotency_key="x"
        )
    assert db.session.scalar(sa.select(sa.func.count(LedgerTransaction.id))) == before
    assert _wallet(player.id).balance == 10_00


def test_database_refuses_a_negative_balance_even_behind_the_services_back(factory):
    player = factory.player()
    w = wallet.get_or_create_wallet(player.id, "EUR")
    with pytest.raises(sa.exc.IntegrityError), atomic():
        db.session.execute(sa.update(Wallet).where(Wallet.id == w.id).values(balance=-1))


def test_amounts_must_be_integers(factory):
    player = factory.player()
    with pytest.raises(TypeError), atomic():
        wallet.post(player.id, "EUR", "deposit", cash_delta=1.5, source="p", idempotency_key="f")
    with pytest.raises(ValidationError), atomic():
        wallet.post(player.id, "EUR", "deposit", source="p", idempotency_key="z")
    with pytest.raises(ValidationError), atomic():
        wallet.post(player.id, "XYZ", "deposit", cash_delta=1, source="p", idempotency_key="c")


def test_stake_takes_cash_first_then_bonus(factory):
    player = factory.player()
    fund(player.id, cash=3_00, bonus=5_00)
    with atomic():
        posting = wallet.stake(player.id, "EUR", 4_00, source="g", idempotency_key="s1")
    assert (posting.cash_delta, posting.bonus_delta) == (-3_00, -1_00)
    with pytest.raises(InsufficientBalance), atomic():
        wallet.stake(player.id, "EUR", 5_00, source="g", idempotency_key="s2")
    reconcile_clean()


def test_withdrawal_hold_release_and_settle(factory):
    player = factory.player()
    fund(player.id, 100_00)
    with atomic():
        wallet.hold(player.id, "EUR", 60_00, idempotency_key="w1-hold", reference_id=1)
    w = _wallet(player.id)
    assert (w.balance, w.held_balance) == (40_00, 60_00)
    with pytest.raises(InsufficientBalance), atomic():
        wallet.hold(player.id, "EUR", 40_01, idempotency_key="w2-hold", reference_id=2)
    with atomic():
        wallet.release(player.id, "EUR", 20_00, idempotency_key="w1-release", reference_id=1)
        wallet.settle_hold(player.id, "EUR", 40_00, idempotency_key="w1-paid", reference_id=1)
    w = _wallet(player.id)
    assert (w.balance, w.held_balance) == (60_00, 0)
    reconcile_clean()


def test_balance_update_event_is_published_only_after_commit(factory):
    player = factory.player()
    seen = []
    unsubscribe = subscribe(seen.append)
    try:
        with pytest.raises(RuntimeError), atomic():
            wallet.post(
                player.id, "EUR", "deposit", cash_delta=1_00, source="p", idempotency_key="a"
            )
            raise RuntimeError("boom")
        assert seen == []
        with atomic():
            wallet.post(
                player.id, "EUR", "deposit", cash_delta=2_00, source="p", idempotency_key="b"
            )
            assert seen == []
    finally:
        unsubscribe()
    assert len(seen) == 1
    event = seen[0]
    assert event.name == "balance.update"
    assert event.room == f"user:{player.id}"
    assert event.data["balance"] == "2.00"
    assert event.data["currency"] == "EUR"


def test_adjust_is_audited_and_requires_a_reason(factory):
    player = factory.player()
    manager = factory.staff("manager")
    with pytest.raises(ValidationError):
        wallet.adjust(player.id, "EUR", 5_00, reason="  ", actor=manager)
    posting = wallet.adjust(player.id, "EUR", 5_00, reason="goodwill", actor=manager)
    row = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "wallet.adjust"))
    assert row.actor_id == manager.id
    assert row.reason == "goodwill"
    assert row.after["transaction_id"] == posting.transaction_id
    with pytest.raises(InsufficientBalance):
        wallet.adjust(player.id, "EUR", -5_01, reason="claw back", actor=manager)


def test_reconcile_finds_a_balance_changed_behind_the_ledgers_back(factory):
    player = factory.player()
    fund(player.id, 10_00)
    reconcile_clean()
    with atomic():
        db.session.execute(
            sa.update(Wallet).where(Wallet.user_id == player.id).values(balance=Wallet.balance + 1)
        )
    problems = wallet.reconcile()
    assert len(problems) == 1
    assert problems[0].kind == "wallet"
    assert "1001 vs ledger 1000" in problems[0].detail


def test_reconcile_finds_an_unbalanced_transaction(factory, is_postgres):
    player = factory.player()
    fund(player.id, 10_00)
    tx_id = db.session.scalar(sa.select(LedgerTransaction.id))
    with atomic():
        db.session.execute(
            sa.insert(LedgerEntry).values(
                transaction_id=tx_id, wallet_id=None, account="house:x", currency="EUR", amount=5
            )
        )
    kinds = {(p.kind, p.subject) for p in wallet.reconcile()}
    assert ("transaction", f"#{tx_id}") in kinds


def test_ledger_is_append_only_on_postgres(factory, requires_postgres):
    player = factory.player()
    fund(player.id, 10_00)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), atomic():
        db.session.execute(sa.delete(LedgerEntry))
