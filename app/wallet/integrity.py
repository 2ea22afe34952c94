"""The ledger's keyed integrity: every transaction signed, every wallet's history continuous,
the tail anchored by signed checkpoints (``flask jackpotx wallets verify``).

Invariants:
* ``ledger.post`` writes each transaction with ``mac = <key id>:HMAC(AUDIT_CHAIN_KEY,
  canonical(columns + house account))`` (:func:`mac_for`), in the posting's own statement: no
  extra round trip, no lock beyond the wallet's. The database never holds the key, so a
  transaction inserted or edited by whoever can only write the database does not verify.
* A transaction's entries are exactly what its signed columns say: one leg per non-zero
  wallet delta and one house leg of the opposite sum on the signed account. An entry added to
  (or changed in) a signed transaction does not verify.
* Per wallet, in id order (ids are taken under the wallet lock), ``balance_after`` and
  ``bonus_balance_after`` continue from the previous transaction by its deltas, and the last
  one equals the wallet's balances: a signed transaction deleted from the middle of a
  wallet's history breaks the continuity.
* No global chain: that would serialize every bet of every player on one lock. The tail is
  anchored instead by the checkpoint's count and head (:func:`snapshot`): a transaction
  deleted at the end of a wallet's history is caught once a checkpoint counted it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.core import audit
from app.core.chain import keyring, latest_checkpoint, write_checkpoint
from app.core.db import table_of
from app.core.extensions import db
from app.wallet.models import WALLET_ACCOUNTS, LedgerEntry, LedgerTransaction, Wallet

#: The signed columns, in order (with the house account last).
SIGNED_COLUMNS = (
    "wallet_id",
    "user_id",
    "currency",
    "type",
    "source",
    "idempotency_key",
    "reference_type",
    "reference_id",
    "cash_delta",
    "bonus_delta",
    "held_delta",
    "balance_after",
    "bonus_balance_after",
    "description",
    "meta",
    "actor_id",
    "created_at",
)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _message(row: Mapping[str, Any], counter: str) -> str:
    values = [row[name] for name in SIGNED_COLUMNS]
    values[-1] = _ts(values[-1])
    values.append(counter)
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)


def mac_for(row: Mapping[str, Any], counter: str) -> str:
    """The ``mac`` column of a new transaction (``row`` holds :data:`SIGNED_COLUMNS`);
    ``counter``: its house account, signed only when it has a house leg (non-zero sum)."""
    ring = keyring()
    if not (row["cash_delta"] + row["bonus_delta"] + row["held_delta"]):
        counter = ""
    return f"{ring.current_id}:{ring.mac(_message(row, counter))}"


@dataclass
class LedgerReport:
    checked: int = 0
    last_id: int = 0
    head: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _house_leg(entries: list[tuple[int | None, str, str, int]]) -> str | None:
    houses = {account for wallet_id, account, _c, _a in entries if wallet_id is None}
    return houses.pop() if len(houses) == 1 else None


def _expected(tx: Any, counter: str | None) -> list[tuple]:
    legs: list[tuple] = [
        (tx.wallet_id, account, tx.currency, amount)
        for account, amount in zip(
            WALLET_ACCOUNTS, (tx.cash_delta, tx.bonus_delta, tx.held_delta), strict=True
        )
        if amount
    ]
    total = tx.cash_delta + tx.bonus_delta + tx.held_delta
    if total:
        legs.append((None, counter, tx.currency, -total))
    return sorted(legs, key=repr)


def _check_tx(
    tx: Any, entries: list[tuple[int | None, str, str, int]], legacy_until: int
) -> str | None:
    actual = sorted(entries, key=repr)
    if tx.mac is None:
        if tx.id > legacy_until:
            return "is not signed (inserted without AUDIT_CHAIN_KEY?)"
        if actual != _expected(tx, _house_leg(entries)):
            return "entries do not match its columns"
        return None
    kid, _, digest = tx.mac.partition(":")
    ring = keyring()
    row = {name: getattr(tx, name) for name in SIGNED_COLUMNS}
    # The signed house account is whichever one the entries name; a wrong one fails the MAC.
    counter = _house_leg(entries) or ""
    verdict = ring.matches(kid, _message(row, counter), digest)
    if verdict is None:
        return f"signed with unknown key {kid} (AUDIT_CHAIN_PREVIOUS_KEYS?)"
    if not verdict:
        return "does not match its signature (altered or forged)"
    if actual != _expected(tx, counter):
        return "entries do not match its signed columns (an entry added or changed)"
    return None


def verify(
    batch: int = 2000,
    *,
    anchor: dict[str, Any] | None = None,
    after_id: int = 0,
    continuity: bool = True,
) -> LedgerReport:
    """Check every transaction after ``after_id`` (all by default) against its signature and
    its entries, each wallet's continuity (full runs only) and the checkpoint ``anchor``."""
    legacy_until = int(anchor.get("legacy_until", 0)) if anchor else 0
    report = LedgerReport(last_id=after_id)
    running: dict[int, tuple[int, int]] = {}
    session = db.session
    last_id = after_id
    lt = table_of(LedgerTransaction)
    while True:
        # Plain rows, not ORM objects: nothing piles up in (or is taken from) the session.
        txs = session.execute(
            select(*lt.c).where(lt.c.id > last_id).order_by(lt.c.id).limit(batch)
        ).all()
        if not txs:
            break
        entries: dict[int, list[tuple[int | None, str, str, int]]] = {}
        for tx_id, wallet_id, account, currency, amount in session.execute(
            select(
                LedgerEntry.transaction_id,
                LedgerEntry.wallet_id,
                LedgerEntry.account,
                LedgerEntry.currency,
                LedgerEntry.amount,
            ).where(LedgerEntry.transaction_id.between(txs[0].id, txs[-1].id))
        ):
            entries.setdefault(tx_id, []).append((wallet_id, account, currency, amount))
        for tx in txs:
            problem = _check_tx(tx, entries.get(tx.id, []), legacy_until)
            if problem:
                report.problems.append(f"transaction #{tx.id} {problem}")
            if continuity:
                before = running.get(tx.wallet_id, (0, 0))
                want = (before[0] + tx.cash_delta, before[1] + tx.bonus_delta)
                if (tx.balance_after, tx.bonus_balance_after) != want:
                    report.problems.append(
                        f"transaction #{tx.id}: wallet #{tx.wallet_id} balance after "
                        f"{tx.balance_after}/{tx.bonus_balance_after} does not continue from "
                        f"{before[0]}/{before[1]} (a transaction removed before it?)"
                    )
                running[tx.wallet_id] = (tx.balance_after, tx.bonus_balance_after)
            report.checked += 1
            last_id = tx.id
            report.head = tx.mac or ""
    report.last_id = last_id
    if continuity:
        for wid, balance, bonus in session.execute(
            select(Wallet.id, Wallet.balance, Wallet.bonus_balance)
        ):
            if running.get(wid, (0, 0)) != (balance, bonus):
                last = running.get(wid, (0, 0))
                report.problems.append(
                    f"wallet #{wid}: balances {balance}/{bonus} but its last transaction left "
                    f"{last[0]}/{last[1]}"
                )
    if anchor is None:
        report.notes.append("no checkpoint yet: a deleted tail cannot be detected")
        return report
    want_id, want_count = int(anchor["last_id"]), int(anchor["count"])
    if want_id:
        found = session.execute(
            select(LedgerTransaction.mac).where(LedgerTransaction.id == want_id)
        ).one_or_none()
        if found is None:
            report.problems.append(
                f"checkpoint head transaction #{want_id} is missing (tail deleted?)"
            )
        elif (found.mac or "") != anchor["head"]:
            report.problems.append(f"checkpoint head transaction #{want_id} is different")
    have = session.scalar(
        select(func.count(LedgerTransaction.id)).where(LedgerTransaction.id <= want_id)
    )
    # Ids are taken before commit: a transaction committed after the checkpoint may carry a
    # lower id, so the count can grow, never shrink.
    if (have or 0) < want_count:
        report.problems.append(
            f"checkpoint counted {want_count} transactions up to #{want_id}, the ledger has {have}"
        )
    return report


def snapshot(previous: dict[str, Any] | None, *, accept_legacy: bool = False) -> dict[str, Any]:
    """The ``ledger`` section of a new checkpoint, after checking the transactions written
    since ``previous`` (signatures and entries; continuity is the full verify's)."""
    if previous is None:
        legacy = db.session.scalar(
            select(func.max(LedgerTransaction.id)).where(LedgerTransaction.mac.is_(None))
        )
        if legacy and not accept_legacy:
            raise audit.ChainBroken(
                f"ledger transactions up to #{legacy} were written before they were signed: "
                "check them (wallets reconcile) and vouch for them once with "
                "`audit checkpoint --accept-legacy`"
            )
        anchor: dict[str, Any] = {"legacy_until": legacy or 0, "last_id": 0, "count": 0, "head": ""}
    else:
        anchor = previous
    report = verify(anchor=anchor, after_id=int(anchor["last_id"]), continuity=False)
    if not report.ok:
        raise audit.ChainBroken("; ".join(report.problems[:5]))
    count = db.session.scalar(
        select(func.count(LedgerTransaction.id)).where(LedgerTransaction.id <= report.last_id)
    )
    head = db.session.scalar(
        select(LedgerTransaction.mac).where(LedgerTransaction.id == report.last_id)
    )
    return {
        "count": count or 0,
        "last_id": report.last_id,
        "head": head or "",
        "legacy_until": int(anchor.get("legacy_until", 0)),
    }


def checkpoint(*, accept_legacy: bool = False) -> Path:
    """Write a signed checkpoint of the audit chain and the ledger (periodic job, CLI)."""
    previous = latest_checkpoint()
    sections = {
        "audit": audit.snapshot(previous and previous["audit"], accept_legacy=accept_legacy),
        "ledger": snapshot(previous and previous["ledger"], accept_legacy=accept_legacy),
    }
    return write_checkpoint(sections)
