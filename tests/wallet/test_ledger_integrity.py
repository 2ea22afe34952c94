"""Ledger transactions are signed and anchored (issue 21): what `wallets reconcile` cannot see
(a forged but balanced credit, an edit kept consistent, a deleted tail) `wallets verify` does."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import pytest
import sqlalchemy as sa

from app.core import chain
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.schedule import PERIODIC_JOBS
from app.wallet import integrity
from app.wallet import ledger as wallet
from app.wallet.jobs import write_checkpoint
from app.wallet.models import LedgerEntry, LedgerTransaction, Wallet
from tests.moneykit import fund, open_table, reconcile_clean

SECRET = "ledger-chain-test-key-0123456789abcdef"
CREDIT = 1000_00
GUESSED = b"dev-audit-chain-key-change-me-not-secret"


@pytest.fixture(autouse=True)
def _keyed(app, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_KEY", SECRET)
    monkeypatch.setitem(app.config, "AUDIT_CHAIN_PREVIOUS_KEYS", [])
    monkeypatch.setitem(app.config, "AUDIT_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))


@pytest.fixture
def played(client, factory):
    """A player who deposited 100.00 and bet and won through a provider callback."""
    table = open_table(client, factory, cash=100_00)
    assert table.bet("b1", "5.00")["status"] == "ok"
    assert table.win("w1", "7.50")["status"] == "ok"
    return table


def _writable(is_postgres: bool) -> None:
    if is_postgres:
        for table in ("ledger_transactions", "ledger_entries"):
            db.session.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))


def _leg(tx_id: int, wallet_id: int | None, account: str, amount: int) -> dict:
    return {
        "transaction_id": tx_id,
        "wallet_id": wallet_id,
        "account": account,
        "currency": "EUR",
        "amount": amount,
    }


def _shift(wallet_id: int, **deltas: int) -> None:
    """Move a wallet's balances the way a forger keeps reconcile quiet."""
    values = {name: getattr(Wallet, name) + delta for name, delta in deltas.items()}
    db.session.execute(sa.update(Wallet).where(Wallet.id == wallet_id).values(**values))


def _wallet(user_id: int) -> Wallet:
    db.session.expire_all()
    return db.session.scalar(sa.select(Wallet).where(Wallet.user_id == user_id))


def _forge_credit(user_id: int, mac: str | None) -> int:
    """Insert a +1000.00 deposit with its balancing leg and move the balance to match."""
    w = _wallet(user_id)
    tx_id = db.session.execute(
        sa.insert(LedgerTransaction)
        .values(
            wallet_id=w.id,
            user_id=user_id,
            currency=w.currency,
            type="deposit",
            source="payments",
            idempotency_key=f"forged-{secrets.token_hex(4)}",
            cash_delta=CREDIT,
            bonus_delta=0,
            held_delta=0,
            balance_after=w.balance + CREDIT,
            bonus_balance_after=w.bonus_balance,
            created_at=utcnow(),
            mac=mac,
        )
        .returning(LedgerTransaction.id)
    ).scalar_one()
    db.session.execute(
        sa.insert(LedgerEntry),
        [_leg(tx_id, w.id, "cash", CREDIT), _leg(tx_id, None, "external:payments", -CREDIT)],
    )
    _shift(w.id, balance=CREDIT)
    return tx_id


def _verify(runner) -> tuple[int, str]:
    out = runner.invoke(args=["jackpotx", "wallets", "verify"])
    return out.exit_code, out.output


def test_every_posting_is_signed_and_the_ledger_verifies(played, runner):
    txs = db.session.scalars(sa.select(LedgerTransaction).order_by(LedgerTransaction.id)).all()
    assert len(txs) == 3
    assert all(tx.mac and tx.mac.startswith(chain.key_id(SECRET) + ":") for tx in txs)
    report = integrity.verify()
    assert report.ok, report.problems
    assert report.checked == 3
    code, output = _verify(runner)
    assert code == 0, output
    assert "3 transactions signed and continuous" in output


def test_holds_and_zero_sum_movements_verify(factory):
    player = factory.player()
    fund(player.id, cash=50_00, bonus=10_00)
    hold = {"cash_delta": -20_00, "held_delta": 20_00}
    goodwill = {"counter_account": "house:goodwill", "meta": {"n": 1.5}}
    with atomic():
        wallet.post(player.id, "EUR", "withdrawal_hold", source="pay", idempotency_key="h", **hold)
        wallet.post(
            player.id,
            "EUR",
            "adjustment",
            cash_delta=3_00,
            source="a",
            idempotency_key="a",
            **goodwill,
        )
    report = integrity.verify()
    assert report.ok, report.problems


@pytest.mark.parametrize("how", ["unsigned", "unkeyed", "guessed key"])
def test_a_forged_but_balanced_credit_is_caught(played, runner, is_postgres, how):
    sample = db.session.scalar(sa.select(LedgerTransaction.mac).limit(1))
    kid = sample.split(":")[0]
    mac = {
        "unsigned": None,
        # Our key id (every row shows it) with a plain SHA-256 or an HMAC under a guessed key.
        "unkeyed": f"{kid}:{hashlib.sha256(b'forged').hexdigest()}",
        "guessed key": f"{kid}:{hmac.new(GUESSED, b'x', 'sha256').hexdigest()}",
    }[how]
    with atomic():
        tx_id = _forge_credit(played.user_id, mac)
    assert played.balances()[0] == 100_00 - 5_00 + 7_50 + CREDIT
    reconcile_clean()  # what today's reconcile says: all balanced
    report = integrity.verify()
    assert not report.ok
    assert any(f"#{tx_id}" in p for p in report.problems), report.problems
    code, output = _verify(runner)
    assert code == 1
    assert f"transaction #{tx_id}" in output


def test_an_edit_kept_consistent_is_caught(played, runner, is_postgres):
    """The deposit becomes 1100.00: header, entries, every later balance and the wallet
    moved together, so every sum still agrees."""
    deposit = db.session.scalar(
        sa.select(LedgerTransaction).where(LedgerTransaction.type == "deposit")
    )
    with atomic():
        _writable(is_postgres)
        db.session.execute(
            sa.update(LedgerTransaction)
            .where(LedgerTransaction.id == deposit.id)
            .values(cash_delta=LedgerTransaction.cash_delta + CREDIT)
        )
        db.session.execute(
            sa.update(LedgerTransaction)
            .where(LedgerTransaction.wallet_id == deposit.wallet_id)
            .values(balance_after=LedgerTransaction.balance_after + CREDIT)
        )
        db.session.execute(
            sa.update(LedgerEntry)
            .where(LedgerEntry.transaction_id == deposit.id)
            .values(amount=sa.case((LedgerEntry.amount > 0, LedgerEntry.amount + CREDIT),
                                   else_=LedgerEntry.amount - CREDIT))
        )  # fmt: skip
        _shift(deposit.wallet_id, balance=CREDIT)
    reconcile_clean()
    report = integrity.verify()
    assert [p for p in report.problems if f"#{deposit.id} " in p] == [
        f"transaction #{deposit.id} does not match its signature (altered or forged)"
    ]
    assert _verify(runner)[0] == 1


def test_an_entry_slipped_into_a_signed_transaction_is_caught(played, is_postgres):
    bet = db.session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.type == "bet"))
    with atomic():
        db.session.execute(
            sa.insert(LedgerEntry),
            [
                _leg(bet.id, bet.wallet_id, "bonus", CREDIT),
                _leg(bet.id, None, "house:games", -CREDIT),
            ],
        )
        _shift(bet.wallet_id, bonus_balance=CREDIT)
    problems = integrity.verify().problems
    assert any(f"#{bet.id} entries do not match" in p for p in problems), problems


def test_a_deleted_transaction_breaks_the_wallets_continuity(played, is_postgres):
    bet = db.session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.type == "bet"))
    with atomic():
        _writable(is_postgres)
        db.session.execute(sa.delete(LedgerEntry).where(LedgerEntry.transaction_id == bet.id))
        db.session.execute(sa.delete(LedgerTransaction).where(LedgerTransaction.id == bet.id))
        _shift(bet.wallet_id, balance=5_00)
    reconcile_clean()
    problems = integrity.verify().problems
    assert any("does not continue" in p for p in problems), problems


def test_a_deleted_tail_is_caught_by_the_checkpoint(played, runner, is_postgres):
    written = runner.invoke(args=["jackpotx", "audit", "checkpoint"])
    assert written.exit_code == 0, written.output
    code, output = _verify(runner)
    assert code == 0, output
    assert "checkpoint jx-checkpoint-" in output
    win = db.session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.type == "win"))
    with atomic():
        _writable(is_postgres)
        db.session.execute(sa.delete(LedgerEntry).where(LedgerEntry.transaction_id == win.id))
        db.session.execute(sa.delete(LedgerTransaction).where(LedgerTransaction.id == win.id))
        _shift(win.wallet_id, balance=-7_50)
    reconcile_clean()
    assert integrity.verify().ok  # without the checkpoint nothing is missing
    code, output = _verify(runner)
    assert code == 1
    assert f"checkpoint head transaction #{win.id} is" in output
    # A new posting after the deletion does not hide it.
    fund(played.user_id, cash=1_00)
    report = integrity.verify(anchor=chain.latest_checkpoint()["ledger"])
    assert not report.ok


def test_the_periodic_job_writes_a_checkpoint(played, app):
    assert ("app.wallet.jobs.write_checkpoint", 300, "default") in PERIODIC_JOBS
    path = write_checkpoint()
    data = chain.read_checkpoint(chain.checkpoint_files()[-1])
    assert str(path).endswith(data["file"])
    assert data["ledger"]["count"] == 3
    assert data["ledger"]["head"] == db.session.scalar(
        sa.select(LedgerTransaction.mac).order_by(LedgerTransaction.id.desc()).limit(1)
    )


def test_transactions_from_before_the_upgrade_need_one_vouching_checkpoint(played, runner):
    with atomic():
        old = _forge_credit(played.user_id, None)  # what a database written before 0016 holds
    assert not integrity.verify().ok
    refused = runner.invoke(args=["jackpotx", "audit", "checkpoint"])
    assert refused.exit_code == 1
    assert "--accept-legacy" in refused.output
    vouched = runner.invoke(args=["jackpotx", "audit", "checkpoint", "--accept-legacy"])
    assert vouched.exit_code == 0, vouched.output
    assert chain.latest_checkpoint()["ledger"]["legacy_until"] == old
    fund(played.user_id, cash=1_00)  # signed from now on
    code, output = _verify(runner)
    assert code == 0, output
    with atomic():
        forged = _forge_credit(played.user_id, None)
    code, output = _verify(runner)
    assert code == 1
    assert f"transaction #{forged} is not signed" in output
