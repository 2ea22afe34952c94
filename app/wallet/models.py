"""Wallets and the double-entry ledger.

* ``Wallet``: one per (player, currency); cash, bonus and held (withdrawals awaiting payout)
  balances in minor units, each CHECK >= 0. Only ``app.wallet.ledger`` changes them.
* ``LedgerTransaction``: one money movement, typed, naming its cause and an idempotency key
  unique per source. ``LedgerEntry`` rows are its legs: wallet legs (``cash``/``bonus``/``held``
  of one wallet) and house/external legs (``house:games`` ...). The legs of a transaction sum
  to zero; the wallet legs of a wallet sum to its balances. On PostgreSQL a trigger refuses
  UPDATE and DELETE on both tables: corrections are new rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK, table_of
from app.core.extensions import Model

#: Every ledger transaction type (DESIGN.md "Wallet and ledger").
LEDGER_TYPES = (
    "deposit",
    "withdrawal",
    "withdrawal_hold",
    "withdrawal_release",
    "bet",
    "win",
    "refund",
    "rollback",
    "bonus_grant",
    "bonus_convert",
    "bonus_forfeit",
    "adjustment",
    "jackpot_win",
    "tournament_prize",
    "tournament_fee",
    "commission",
)

#: The house/external account on the other side of each movement type.
COUNTER_ACCOUNTS: dict[str, str] = {
    "deposit": "external:payments",
    "withdrawal": "external:payments",
    "withdrawal_hold": "external:payments",
    "withdrawal_release": "external:payments",
    "bet": "house:games",
    "win": "house:games",
    "refund": "house:games",
    "rollback": "house:games",
    "bonus_grant": "house:bonus",
    "bonus_convert": "house:bonus",
    "bonus_forfeit": "house:bonus",
    "adjustment": "house:adjustments",
    "jackpot_win": "house:jackpots",
    "tournament_prize": "house:tournaments",
    "tournament_fee": "house:tournaments",
    "commission": "house:commissions",
}

#: Wallet-side accounts of an entry; anything else is a house or external account.
WALLET_ACCOUNTS = ("cash", "bonus", "held")


class Wallet(Model):
    __tablename__ = "wallets"
    __table_args__ = (
        UniqueConstraint("user_id", "currency", name="uq_wallets_user_currency"),
        CheckConstraint("balance >= 0", name="balance_non_negative"),
        CheckConstraint("bonus_balance >= 0", name="bonus_balance_non_negative"),
        CheckConstraint("held_balance >= 0", name="held_balance_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    #: Indexed by the unique (user_id, currency) constraint.
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(8))
    #: Withdrawable cash, minor units.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Bonus money (wagering rules belong to the bonus domain), minor units.
    bonus_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Cash reserved by pending withdrawals, minor units; not spendable.
    held_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LedgerTransaction(Model):
    __tablename__ = "ledger_transactions"
    __table_args__ = (
        UniqueConstraint("source", "idempotency_key", name="uq_ledger_transactions_source_key"),
        CheckConstraint("type IN (" + ", ".join(f"'{t}'" for t in LEDGER_TYPES) + ")", name="type"),
        # Statements: one player's movements, newest first.
        Index("ix_ledger_transactions_user_created", "user_id", "created_at"),
        Index("ix_ledger_transactions_reference", "reference_type", "reference_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    wallet_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("wallets.id"))
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(32))
    #: Who asks for the movement: ``provider:<code>``, ``admin``, ``payments``, ``bonus`` ...
    source: Mapped[str] = mapped_column(String(64))
    #: Unique per source: the same request twice is one movement.
    idempotency_key: Mapped[str] = mapped_column(String(191))
    #: The cause: ``provider_transaction``/42, ``withdrawal``/7, ``game_round``/9 ...
    reference_type: Mapped[str | None] = mapped_column(String(32))
    reference_id: Mapped[str | None] = mapped_column(String(64))
    #: Denormalized wallet legs (the entries are authoritative; reconcile checks both).
    cash_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    bonus_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    held_delta: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Wallet balances right after this movement (statements, callback answers).
    balance_after: Mapped[int] = mapped_column(BigInteger)
    bonus_balance_after: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(500))
    meta: Mapped[Any] = mapped_column(JSON, nullable=True)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: ``<key id>:<HMAC-SHA256>`` of the movement (its columns and its house account), keyed
    #: with ``AUDIT_CHAIN_KEY`` (app.wallet.integrity); NULL only for rows written before.
    mac: Mapped[str | None] = mapped_column(String(80))


class LedgerEntry(Model):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("ledger_transactions.id"), index=True
    )
    #: Set for wallet legs (``cash``/``bonus``/``held``); NULL for house/external accounts.
    wallet_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("wallets.id"))
    account: Mapped[str] = mapped_column(String(48))
    currency: Mapped[str] = mapped_column(String(8))
    #: Signed minor units: positive credits the account.
    amount: Mapped[int] = mapped_column(BigInteger)


Index("ix_ledger_entries_wallet_account", LedgerEntry.wallet_id, LedgerEntry.account)


LEDGER_APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: post a correcting transaction instead';
END;
$$ LANGUAGE plpgsql;
"""

for _table in (table_of(LedgerTransaction), table_of(LedgerEntry)):
    event.listen(
        _table,
        "after_create",
        DDL(LEDGER_APPEND_ONLY_SQL).execute_if(dialect="postgresql"),
    )
    event.listen(
        _table,
        "after_create",
        DDL(
            f"CREATE TRIGGER {_table.name}_append_only BEFORE UPDATE OR DELETE ON {_table.name} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        ).execute_if(dialect="postgresql"),
    )
