"""The wallet: the one module that changes a balance.

Invariants (``flask jackpotx wallets reconcile`` proves them):
* A balance changes only here, inside a transaction that holds the wallet row lock
  (``SELECT ... FOR UPDATE``), together with the ledger rows that explain it.
* Every movement is one ``LedgerTransaction`` whose entries sum to zero: the wallet legs
  (``cash``/``bonus``/``held``) plus one house/external leg for the difference.
  For every wallet, the sum of its legs per account equals its balances.
* ``(source, idempotency_key)`` is unique (index): the same request twice is one movement.
  The key is claimed with ``INSERT ... ON CONFLICT DO NOTHING`` and the original is read
  back, never check-then-write.
* No balance goes below zero (DB CHECK too): a movement that would is refused before any
  row is written, so ``post`` never leaves a half-done movement behind and needs no savepoint.
* ``balance.update`` goes to room ``user:<id>`` only after commit.

Other domains call ``post`` (any typed movement), ``stake`` (bets: cash first, then bonus),
``hold``/``release``/``settle_hold`` (withdrawals), ``get_or_create_wallet`` and ``balances``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import and_, bindparam, exists, func, insert, select, union_all, update
from sqlalchemy import literal as sa_literal
from sqlalchemy import null as sa_null
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from app.core import audit, prepared
from app.core.base import utcnow
from app.core.db import (
    atomic,
    core_execute,
    dialect_insert,
    first_mapping,
    in_atomic,
    returned_by_writes,
    table_of,
    with_writes,
)
from app.core.errors import Conflict, InsufficientBalance, NotFound, ValidationError
from app.core.events import publish, user_room
from app.core.extensions import db
from app.core.money import MoneyError, format_minor, normalize_currency
from app.identity.models import User
from app.wallet import integrity
from app.wallet.models import (
    COUNTER_ACCOUNTS,
    LEDGER_TYPES,
    LedgerEntry,
    LedgerTransaction,
    Wallet,
)


@dataclass(frozen=True, slots=True)
class LockedWallet:
    """A wallet row as read under its lock (valid until the transaction ends)."""

    id: int
    user_id: int
    currency: str
    balance: int
    bonus_balance: int
    held_balance: int


@dataclass(frozen=True, slots=True)
class Posting:
    """What a movement did (or, when ``replayed``, what the first identical request did)."""

    transaction_id: int
    wallet_id: int
    user_id: int
    currency: str
    type: str
    cash_delta: int
    bonus_delta: int
    held_delta: int
    balance: int
    bonus_balance: int
    replayed: bool = False
    #: Per :class:`Companion` of the posting, what its ``RETURNING`` gave (``None``: no row).
    returned: tuple[dict[str, Any] | None, ...] = ()


@dataclass(frozen=True, slots=True)
class Companion:
    """A write of the caller's that rides with a posting, in the caller's transaction: on
    PostgreSQL a CTE of the posting's one statement (no round trip of its own), elsewhere its
    own statement right after the posting.

    ``build(dialect_insert)`` (called once per dialect, cached under ``name``) returns an
    ``INSERT``/``UPDATE ... RETURNING`` over bind parameters that neither the posting nor another
    companion uses (prefix them); ``params`` fills them. It runs whatever the posting does: a
    caller that finds its ``returned`` row wrong raises, and its transaction rolls both back.
    """

    name: str
    build: Callable[[Callable[[Any], Any]], Any]
    params: dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------


def _session() -> Session:
    return db.session()


_statements: dict[tuple[str, str], Any] = {}


def hot_statement(name: str, build: Callable[[Callable[[Any], Any]], Any]) -> Any:
    """A statement of the money hot path, built once per SQL dialect.

    ``build(dialect_insert)`` returns a statement whose varying parts are ``bindparam()``s or
    are passed as execution parameters (``session.execute(stmt, {...})``). Built once, the
    statement's cache key is computed once: SQLAlchemy then finds the compiled SQL in its cache
    without walking fresh literals on every call (the cost a per-call ``insert().values(...)``
    pays on every callback).
    """
    dialect = _session().get_bind().dialect.name
    key = (dialect, name)
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = build(dialect_insert).execution_options(**{prepared.HOT: True})
    return stmt


_wt = table_of(Wallet).c
_lt = table_of(LedgerTransaction).c


def _build_lock(_insert: Any) -> Any:
    return (
        select(_wt.id, _wt.user_id, _wt.balance, _wt.bonus_balance, _wt.held_balance)
        .where(_wt.user_id == bindparam("user_id"), _wt.currency == bindparam("currency"))
        .with_for_update()
    )


def lock_after(claimed: Any, user_id: Any = None, currency: Any = None) -> Any:
    """The wallet lock of :func:`lock` as a CTE (``locked``) for a caller's statement: it
    locks (and reads) the wallet of ``user_id``/``currency`` (SQL expressions; by default the
    bind parameters ``lock_user_id``/``lock_currency``) only if ``claimed`` (a
    CTE with an ``id`` column, e.g. an ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``)
    returned a row. One round trip for "claim this request, then lock its wallet"
    (PostgreSQL). Bind parameters are not column names: an ``UPDATE`` in the same statement
    would take those as values to set. A write of the caller that must come after the lock
    (lock order: wallet, then its other rows) filters on ``EXISTS (SELECT FROM locked)``: an
    uncorrelated condition that PostgreSQL evaluates once, before it touches any row. Read the
    result with :func:`locked_from`."""
    return (
        select(_wt.id, _wt.user_id, _wt.balance, _wt.bonus_balance, _wt.held_balance)
        .where(
            _wt.user_id == (bindparam("lock_user_id") if user_id is None else user_id),
            _wt.currency == (bindparam("lock_currency") if currency is None else currency),
            exists(select(claimed.c.id)),
        )
        .with_for_update()
        .cte("locked")
    )


def locked_from(row: Any, user_id: int, currency: str) -> LockedWallet:
    """The wallet a :func:`lock_after` subquery locked (``row`` has its columns), or, when the
    player has no wallet in ``currency`` yet (the columns are NULL), a new one, locked."""
    if row.id is None:
        return lock(user_id, currency)
    return LockedWallet(
        row.id, row.user_id, currency, row.balance, row.bonus_balance, row.held_balance
    )


def _build_ledger_insert(dialect_insert: Any) -> Any:
    return (
        dialect_insert(table_of(LedgerTransaction))
        .on_conflict_do_nothing(index_elements=["source", "idempotency_key"])
        .returning(_lt.id)
    )


def _build_balance_update(_insert: Any) -> Any:
    return (
        update(table_of(Wallet))
        .where(_wt.id == bindparam("wallet_id"))
        .values(
            balance=_wt.balance + bindparam("d_cash"),
            bonus_balance=_wt.bonus_balance + bindparam("d_bonus"),
            held_balance=_wt.held_balance + bindparam("d_held"),
            updated_at=bindparam("now"),
        )
    )


def _build_entries_insert(_insert: Any) -> Any:
    return insert(table_of(LedgerEntry))


#: What a posting inserts: every signed column and the signature.
_LEDGER_COLS = (*integrity.SIGNED_COLUMNS, "mac")


def _build_posting(_insert: Any) -> Any:
    """PostgreSQL: a whole movement in one statement (one round trip instead of three).

    ``WITH tx AS (INSERT ledger transaction ON CONFLICT DO NOTHING RETURNING id),
    bal AS (UPDATE the wallet WHERE a tx row was inserted), legs AS (INSERT the non-zero
    entries FROM tx) SELECT id FROM tx``. The same rows and the same rules as the three
    statements: when the key was already taken ``tx`` is empty, so neither the balance nor the
    entries move and the caller replays the first movement. The caller holds the row lock.
    """
    lt, wt, le = table_of(LedgerTransaction), table_of(Wallet), table_of(LedgerEntry)
    tx = (
        postgresql.insert(lt)
        .values({name: bindparam(f"p_{name}", type_=lt.c[name].type) for name in _LEDGER_COLS})
        .on_conflict_do_nothing(index_elements=["source", "idempotency_key"])
        .returning(lt.c.id)
        .cte("tx")
    )
    bal = (
        update(wt)
        .where(wt.c.id == bindparam("p_wallet_id"), select(tx.c.id).exists())
        .values(
            balance=wt.c.balance + bindparam("d_cash", type_=wt.c.balance.type),
            bonus_balance=wt.c.bonus_balance + bindparam("d_bonus", type_=wt.c.balance.type),
            held_balance=wt.c.held_balance + bindparam("d_held", type_=wt.c.balance.type),
            updated_at=bindparam("p_created_at", type_=wt.c.updated_at.type),
        )
        .returning(wt.c.id)
        .cte("bal")
    )
    amount_type = le.c.amount.type
    currency = bindparam("p_currency", type_=le.c.currency.type)
    legs = [
        select(
            tx.c.id,
            bindparam("p_wallet_id", type_=le.c.wallet_id.type),
            sa_literal(account, le.c.account.type),
            currency,
            bindparam(delta, type_=amount_type),
        ).where(bindparam(delta, type_=amount_type) != 0)
        for account, delta in (("cash", "d_cash"), ("bonus", "d_bonus"), ("held", "d_held"))
    ]
    legs.append(
        select(
            tx.c.id,
            sa_null().cast(le.c.wallet_id.type),
            bindparam("p_counter", type_=le.c.account.type),
            currency,
            bindparam("d_house", type_=amount_type),
        ).where(bindparam("d_house", type_=amount_type) != 0)
    )
    entries = (
        insert(le)
        .from_select(
            ["transaction_id", "wallet_id", "account", "currency", "amount"], union_all(*legs)
        )
        .cte("legs")
    )
    return select(tx.c.id).add_cte(bal, entries)


def _posting_with(dialect_insert: Any, companions: tuple[Companion, ...]) -> Any:
    return with_writes(
        _build_posting(dialect_insert), [c.build(dialect_insert) for c in companions]
    )


@contextlib.contextmanager
def _transaction() -> Iterator[None]:
    # Inside a caller's transaction we join it: every refusal happens before the first write,
    # so there is nothing a savepoint would have to undo (and no extra round trips).
    if in_atomic():
        yield
    else:
        with atomic():
            yield


def _expire_cached(wallet_id: int) -> None:
    """Core UPDATEs bypass the ORM: drop a stale ``Wallet`` object from the identity map."""
    session = _session()
    obj = session.identity_map.get(identity_key(Wallet, wallet_id))
    if obj is not None:
        session.expire(obj)


def _currency(currency: str) -> str:
    try:
        return normalize_currency(currency)
    except MoneyError as exc:
        raise ValidationError.field("currency", str(exc)) from None


def _as_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be int minor units, got {type(value).__name__}")
    return value


def bet_order() -> str:
    """``cash_first`` (default) or ``bonus_first``: which balance a stake draws on first."""
    order = current_app.config.get("WALLET_BET_ORDER", "cash_first")
    return order if order in ("cash_first", "bonus_first") else "cash_first"


# --- wallets ---------------------------------------------------------------------------------


def get_or_create_wallet(user_id: int, currency: str) -> Wallet:
    """The player's wallet in ``currency``, created empty if missing (race-safe)."""
    currency = _currency(currency)
    session = _session()
    wallet = session.scalar(
        select(Wallet).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )
    if wallet is not None:
        return wallet
    with _transaction():
        session.execute(
            dialect_insert(Wallet)
            .values(user_id=user_id, currency=currency, balance=0, bonus_balance=0, held_balance=0)
            .on_conflict_do_nothing(index_elements=["user_id", "currency"])
        )
        return session.scalars(
            select(Wallet)
            .where(Wallet.user_id == user_id, Wallet.currency == currency)
            .execution_options(populate_existing=True)
        ).one()


def balances(user_id: int) -> list[Wallet]:
    return list(
        _session().scalars(
            select(Wallet)
            .where(Wallet.user_id == user_id)
            .order_by(Wallet.id)
            .execution_options(populate_existing=True)
        )
    )


def lock(user_id: int, currency: str, *, create: bool = True) -> LockedWallet:
    """Take the wallet row lock (``SELECT ... FOR UPDATE``) and return fresh balances.

    Must run inside ``atomic()``; the lock is held until that transaction ends, so callers
    keep what they do under it short (the update and the ledger insert).
    """
    if not in_atomic():
        raise RuntimeError("wallet.lock() outside atomic(): the lock would end at once")
    currency = _currency(currency)
    stmt = hot_statement("wallet.lock", _build_lock)
    params = {"user_id": user_id, "currency": currency}
    session = _session()
    row = session.execute(stmt, params).one_or_none()
    if row is None:
        if not create:
            raise ValidationError.field("currency", f"No {currency} wallet for this player")
        get_or_create_wallet(user_id, currency)
        row = session.execute(stmt, params).one()
    return LockedWallet(
        row.id, row.user_id, currency, row.balance, row.bonus_balance, row.held_balance
    )


# --- movements -------------------------------------------------------------------------------


def _replay(tx: Any) -> Posting:
    return Posting(
        transaction_id=tx.id,
        wallet_id=tx.wallet_id,
        user_id=tx.user_id,
        currency=tx.currency,
        type=tx.type,
        cash_delta=tx.cash_delta,
        bonus_delta=tx.bonus_delta,
        held_delta=tx.held_delta,
        balance=tx.balance_after,
        bonus_balance=tx.bonus_balance_after,
        replayed=True,
    )


def _existing(source: str, key: str) -> Any:
    return (
        _session()
        .execute(
            select(LedgerTransaction).where(
                LedgerTransaction.source == source, LedgerTransaction.idempotency_key == key
            )
        )
        .scalar_one_or_none()
    )


def _same_request(tx: Any, user_id: int, currency: str, type_: str, deltas: tuple) -> None:
    if (tx.user_id, tx.currency, tx.type, (tx.cash_delta, tx.bonus_delta, tx.held_delta)) != (
        user_id,
        currency,
        type_,
        deltas,
    ):
        raise Conflict(
            "This idempotency key was already used for a different movement",
            errors=[{"field": "idempotency_key", "message": "reused with different content"}],
        )


def post(
    user_id: int,
    currency: str,
    type: str,
    *,
    cash_delta: int = 0,
    bonus_delta: int = 0,
    held_delta: int = 0,
    source: str,
    idempotency_key: str,
    reference_type: str | None = None,
    reference_id: Any = None,
    description: str | None = None,
    meta: dict[str, Any] | None = None,
    actor: Any = None,
    counter_account: str | None = None,
    locked: LockedWallet | None = None,
    companions: tuple[Companion, ...] = (),
) -> Posting:
    """Apply one typed movement to the player's wallet and write its ledger rows.

    ``cash_delta``/``bonus_delta``/``held_delta`` are signed minor units. The other side of
    the movement goes to ``counter_account`` (default: the type's house/external account).
    Raises ``InsufficientBalance`` (nothing written) if any balance would go below zero;
    ``Conflict`` if the idempotency key was used for a different movement. The same key with
    the same movement returns the first ``Posting`` with ``replayed=True``.

    ``locked``: a wallet the caller already locked with ``lock()`` in this transaction; the
    caller then also owns idempotency of its own request (the key is still unique).
    ``companions`` (only with ``locked``): the caller's writes that ride with the posting.
    """
    if type not in LEDGER_TYPES:
        raise ValueError(f"unknown ledger type {type!r}")
    deltas = (
        _as_int("cash_delta", cash_delta),
        _as_int("bonus_delta", bonus_delta),
        _as_int("held_delta", held_delta),
    )
    if deltas == (0, 0, 0):
        raise ValidationError.field("amount", "A movement must move some money")
    if not source or not idempotency_key:
        raise ValueError("source and idempotency_key are required")
    currency = _currency(currency)
    if companions and locked is None:
        raise ValueError("companions need a wallet the caller locked (their request's own claim)")
    with _transaction():
        if locked is None:
            existing = _existing(source, idempotency_key)
            if existing is not None:
                _same_request(existing, user_id, currency, type, deltas)
                return _replay(existing)
            locked = lock(user_id, currency)
        elif (locked.user_id, locked.currency) != (user_id, currency):
            raise ValueError("locked wallet belongs to another player or currency")
        return _apply(
            locked,
            type,
            deltas,
            source=source,
            key=idempotency_key,
            reference_type=reference_type,
            reference_id=reference_id,
            description=description,
            meta=meta,
            actor=actor,
            counter_account=counter_account,
            companions=companions,
        )


def _replay_concurrent(
    source: str, key: str, w: LockedWallet, type_: str, deltas: tuple[int, int, int]
) -> Posting:
    """A concurrent request with the same key committed first: its movement stands."""
    existing = _existing(source, key)
    _same_request(existing, w.user_id, w.currency, type_, deltas)
    return _replay(existing)


def _apply_statements(
    session: Session, w: LockedWallet, row: dict[str, Any], deltas: tuple, counter: str
) -> int | None:
    """Any other database (SQLite): the movement as three statements; None if the key was taken."""
    cash, bonus, held = deltas
    tx_id = session.execute(
        hot_statement("wallet.ledger_insert", _build_ledger_insert), row
    ).scalar_one_or_none()
    if tx_id is None:
        return None
    session.execute(
        hot_statement("wallet.balance_update", _build_balance_update),
        {
            "wallet_id": w.id,
            "d_cash": cash,
            "d_bonus": bonus,
            "d_held": held,
            "now": row["created_at"],
        },
    )
    # Every row carries the same keys (the house leg's wallet_id is an explicit NULL): one
    # multi-row INSERT instead of one statement per key set.
    entries = [
        {
            "transaction_id": tx_id,
            "wallet_id": w.id,
            "account": account,
            "currency": w.currency,
            "amount": amount,
        }
        for account, amount in (("cash", cash), ("bonus", bonus), ("held", held))
        if amount
    ]
    if cash + bonus + held:
        entries.append(
            {
                "transaction_id": tx_id,
                "wallet_id": None,
                "account": counter,
                "currency": w.currency,
                "amount": -(cash + bonus + held),
            }
        )
    session.execute(hot_statement("wallet.entries_insert", _build_entries_insert), entries)
    return tx_id


def _apply(
    w: LockedWallet,
    type_: str,
    deltas: tuple[int, int, int],
    *,
    source: str,
    key: str,
    reference_type: str | None,
    reference_id: Any,
    description: str | None,
    meta: dict[str, Any] | None,
    actor: Any,
    counter_account: str | None,
    companions: tuple[Companion, ...] = (),
) -> Posting:
    cash, bonus, held = deltas
    new_cash, new_bonus, new_held = w.balance + cash, w.bonus_balance + bonus, w.held_balance + held
    if new_cash < 0 or new_bonus < 0 or new_held < 0:
        raise InsufficientBalance(
            "Insufficient balance for this movement",
            balance=format_minor(w.balance, w.currency),
            bonus_balance=format_minor(w.bonus_balance, w.currency),
            currency=w.currency,
        )
    session = _session()
    now = utcnow()
    counter = counter_account or COUNTER_ACCOUNTS[type_]
    row = {
        "wallet_id": w.id,
        "user_id": w.user_id,
        "currency": w.currency,
        "type": type_,
        "source": source,
        "idempotency_key": key,
        "reference_type": reference_type,
        "reference_id": None if reference_id is None else str(reference_id),
        "cash_delta": cash,
        "bonus_delta": bonus,
        "held_delta": held,
        "balance_after": new_cash,
        "bonus_balance_after": new_bonus,
        "description": description,
        "meta": meta,
        "actor_id": getattr(actor, "id", actor),
        "created_at": now,
    }
    row["mac"] = integrity.mac_for(row, counter)
    if session.get_bind().dialect.name == "postgresql":
        params = {f"p_{name}": value for name, value in row.items()}
        params.update(
            d_cash=cash,
            d_bonus=bonus,
            d_held=held,
            d_house=-(cash + bonus + held),
            p_counter=counter,
        )
        if companions:
            name = "+".join(("wallet.posting", *(c.name for c in companions)))
            stmt = hot_statement(name, lambda ins: _posting_with(ins, companions))
            for companion in companions:
                params.update(companion.params)
        else:
            stmt = hot_statement("wallet.posting", _build_posting)
        result = core_execute(stmt, params).one_or_none()
        tx_id = None if result is None else result[0]
        if tx_id is None:
            return _replay_concurrent(source, key, w, type_, deltas)
        returned = returned_by_writes(result, len(companions))
    else:
        tx_id = _apply_statements(session, w, row, deltas, counter)
        if tx_id is None:
            return _replay_concurrent(source, key, w, type_, deltas)
        returned = tuple(
            first_mapping(session.execute(hot_statement(f"companion.{c.name}", c.build), c.params))
            for c in companions
        )
    _expire_cached(w.id)
    publish(
        "balance.update",
        {
            "currency": w.currency,
            "balance": format_minor(new_cash, w.currency),
            "bonus_balance": format_minor(new_bonus, w.currency),
            "reason": type_,
            "transaction_id": tx_id,
        },
        room=user_room(w.user_id),
    )
    return Posting(
        tx_id,
        w.id,
        w.user_id,
        w.currency,
        type_,
        cash,
        bonus,
        held,
        new_cash,
        new_bonus,
        returned=returned,
    )


def split_stake(w: LockedWallet, amount: int, order: str | None = None) -> tuple[int, int]:
    """How a stake of ``amount`` is paid: ``(cash_part, bonus_part)``, per ``bet_order``."""
    if (order or bet_order()) == "bonus_first":
        bonus_part = min(w.bonus_balance, amount)
        return amount - bonus_part, bonus_part
    cash_part = min(w.balance, amount)
    return cash_part, amount - cash_part


def stake(
    user_id: int,
    currency: str,
    amount: int,
    *,
    source: str,
    idempotency_key: str,
    reference_type: str | None = None,
    reference_id: Any = None,
    meta: dict[str, Any] | None = None,
    locked: LockedWallet | None = None,
) -> Posting:
    """Debit a bet: cash first, then bonus (``WALLET_BET_ORDER``). Cash+bonus must cover it."""
    amount = _as_int("amount", amount)
    if amount <= 0:
        raise ValidationError.field("amount", "A stake must be positive")
    with _transaction():
        if locked is None:
            existing = _existing(source, idempotency_key)
            if existing is not None:
                if (existing.type, -(existing.cash_delta + existing.bonus_delta)) != (
                    "bet",
                    amount,
                ):
                    raise Conflict("This idempotency key was already used for a different movement")
                return _replay(existing)
            locked = lock(user_id, currency)
        if locked.balance + locked.bonus_balance < amount:
            raise InsufficientBalance(
                "Insufficient balance for this stake",
                balance=format_minor(locked.balance, locked.currency),
                bonus_balance=format_minor(locked.bonus_balance, locked.currency),
                currency=locked.currency,
            )
        cash_part, bonus_part = split_stake(locked, amount)
        return post(
            user_id,
            currency,
            "bet",
            cash_delta=-cash_part,
            bonus_delta=-bonus_part,
            source=source,
            idempotency_key=idempotency_key,
            reference_type=reference_type,
            reference_id=reference_id,
            meta=meta,
            locked=locked,
        )


def hold(
    user_id: int,
    currency: str,
    amount: int,
    *,
    idempotency_key: str,
    reference_type: str = "withdrawal",
    reference_id: Any = None,
    actor: Any = None,
    source: str = "payments",
) -> Posting:
    """Reserve cash for a withdrawal: cash → held (refused if cash does not cover it)."""
    return post(
        user_id,
        currency,
        "withdrawal_hold",
        cash_delta=-amount,
        held_delta=amount,
        source=source,
        idempotency_key=idempotency_key,
        reference_type=reference_type,
        reference_id=reference_id,
        actor=actor,
    )


def release(
    user_id: int,
    currency: str,
    amount: int,
    *,
    idempotency_key: str,
    reference_type: str = "withdrawal",
    reference_id: Any = None,
    actor: Any = None,
    source: str = "payments",
) -> Posting:
    """Give a held amount back to cash (withdrawal rejected or payout failed)."""
    return post(
        user_id,
        currency,
        "withdrawal_release",
        cash_delta=amount,
        held_delta=-amount,
        source=source,
        idempotency_key=idempotency_key,
        reference_type=reference_type,
        reference_id=reference_id,
        actor=actor,
    )


def settle_hold(
    user_id: int,
    currency: str,
    amount: int,
    *,
    idempotency_key: str,
    reference_type: str = "withdrawal",
    reference_id: Any = None,
    actor: Any = None,
    source: str = "payments",
) -> Posting:
    """The payout left: the held amount leaves the wallet for good."""
    return post(
        user_id,
        currency,
        "withdrawal",
        held_delta=-amount,
        source=source,
        idempotency_key=idempotency_key,
        reference_type=reference_type,
        reference_id=reference_id,
        actor=actor,
    )


def adjust(
    user_id: int,
    currency: str,
    amount: int,
    *,
    reason: str,
    balance_type: str = "cash",
    actor: Any = None,
    idempotency_key: str | None = None,
) -> Posting:
    """A staff credit (positive) or debit (negative), audited in the same transaction."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError.field("reason", "A reason is required")
    if balance_type not in ("cash", "bonus"):
        raise ValidationError.field("balance_type", "balance_type is cash or bonus")
    if amount == 0:
        raise ValidationError.field("amount", "The amount must not be zero")
    with _transaction():
        user = _session().get(User, user_id)
        if user is None:
            raise NotFound("No such user")
        if user.is_staff:
            raise ValidationError.field("user_id", "Only player wallets can be adjusted")
        posting = post(
            user_id,
            currency,
            "adjustment",
            cash_delta=amount if balance_type == "cash" else 0,
            bonus_delta=amount if balance_type == "bonus" else 0,
            source="admin",
            idempotency_key=idempotency_key or f"adjust:{uuid.uuid4().hex}",
            reference_type="user",
            reference_id=user_id,
            description=reason[:500],
            actor=actor,
        )
        if not posting.replayed:
            audit.record(
                "wallet.adjust",
                actor=actor,
                target_type="user",
                target_id=user_id,
                before={
                    "balance": posting.balance - posting.cash_delta,
                    "bonus_balance": posting.bonus_balance - posting.bonus_delta,
                },
                after={
                    "balance": posting.balance,
                    "bonus_balance": posting.bonus_balance,
                    "currency": posting.currency,
                    "amount": amount,
                    "balance_type": balance_type,
                    "transaction_id": posting.transaction_id,
                },
                reason=reason,
            )
        return posting


# --- reconciliation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.detail}"


def reconcile() -> list[Problem]:
    """Prove the ledger: wallet legs sum to balances, every transaction's legs sum to zero."""
    session = _session()
    problems: list[Problem] = []
    e = LedgerEntry
    sums = (
        select(
            e.wallet_id.label("wallet_id"),
            func.coalesce(func.sum(e.amount).filter(e.account == "cash"), 0).label("cash"),
            func.coalesce(func.sum(e.amount).filter(e.account == "bonus"), 0).label("bonus"),
            func.coalesce(func.sum(e.amount).filter(e.account == "held"), 0).label("held"),
        )
        .where(e.wallet_id.is_not(None))
        .group_by(e.wallet_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Wallet.id,
            Wallet.user_id,
            Wallet.currency,
            Wallet.balance,
            Wallet.bonus_balance,
            Wallet.held_balance,
            func.coalesce(sums.c.cash, 0),
            func.coalesce(sums.c.bonus, 0),
            func.coalesce(sums.c.held, 0),
        )
        .outerjoin(sums, sums.c.wallet_id == Wallet.id)
        .where(
            (Wallet.balance != func.coalesce(sums.c.cash, 0))
            | (Wallet.bonus_balance != func.coalesce(sums.c.bonus, 0))
            | (Wallet.held_balance != func.coalesce(sums.c.held, 0))
        )
        .order_by(Wallet.id)
    ).all()
    for wid, uid, cur, bal, bonus, held, s_cash, s_bonus, s_held in rows:
        problems.append(
            Problem(
                "wallet",
                f"#{wid} (user {uid}, {cur})",
                f"balance {bal} vs ledger {s_cash}; bonus {bonus} vs ledger {s_bonus}; "
                f"held {held} vs ledger {s_held}",
            )
        )
    unbalanced = session.execute(
        select(e.transaction_id, func.sum(e.amount))
        .group_by(e.transaction_id)
        .having(func.sum(e.amount) != 0)
        .order_by(e.transaction_id)
    ).all()
    for tx_id, total in unbalanced:
        problems.append(Problem("transaction", f"#{tx_id}", f"entries sum to {total}, not 0"))
    t = LedgerTransaction
    legs = (
        select(
            e.transaction_id.label("tx"),
            func.coalesce(func.sum(e.amount).filter(e.account == "cash"), 0).label("cash"),
            func.coalesce(func.sum(e.amount).filter(e.account == "bonus"), 0).label("bonus"),
            func.coalesce(func.sum(e.amount).filter(e.account == "held"), 0).label("held"),
            func.count().label("n"),
        )
        .group_by(e.transaction_id)
        .subquery()
    )
    mismatched = session.execute(
        select(t.id, t.cash_delta, t.bonus_delta, t.held_delta, legs.c.n)
        .outerjoin(legs, legs.c.tx == t.id)
        .where(
            legs.c.tx.is_(None)
            | (t.cash_delta != legs.c.cash)
            | (t.bonus_delta != legs.c.bonus)
            | (t.held_delta != legs.c.held)
        )
        .order_by(t.id)
    ).all()
    for tx_id, cash, bonus, held, n in mismatched:
        detail = (
            "has no entries"
            if n is None
            else f"header says cash {cash} bonus {bonus} held {held}, entries disagree"
        )
        problems.append(Problem("transaction", f"#{tx_id}", detail))
    return problems


def wallet_for(user_id: int, currency: str) -> Wallet | None:
    return _session().scalar(
        select(Wallet)
        .where(and_(Wallet.user_id == user_id, Wallet.currency == currency))
        .execution_options(populate_existing=True)
    )


# --- statements ------------------------------------------------------------------------------


@dataclass
class LedgerFilter:
    user_id: int | None = None
    types: list[str] | None = None
    currency: str | None = None
    source: str | None = None
    date_from: Any = None
    date_to: Any = None


def _ledger_query(f: LedgerFilter):
    t = LedgerTransaction
    stmt = select(t)
    if f.user_id is not None:
        stmt = stmt.where(t.user_id == f.user_id)
    if f.types:
        stmt = stmt.where(t.type.in_(f.types))
    if f.currency:
        stmt = stmt.where(t.currency == f.currency)
    if f.source:
        stmt = stmt.where(t.source == f.source)
    if f.date_from is not None:
        stmt = stmt.where(t.created_at >= f.date_from)
    if f.date_to is not None:
        stmt = stmt.where(t.created_at < f.date_to)
    return stmt


def transactions(
    f: LedgerFilter, *, offset: int, limit: int
) -> tuple[list[LedgerTransaction], int]:
    stmt = _ledger_query(f)
    total = _session().scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (
        _session()
        .scalars(
            stmt.order_by(LedgerTransaction.created_at.desc(), LedgerTransaction.id.desc())
            .offset(offset)
            .limit(limit)
        )
        .all()
    )
    return list(rows), int(total or 0)


def transaction_summary(f: LedgerFilter) -> dict[str, dict[str, Any]]:
    """Per currency: count and sum (cash + bonus) of each movement type in the filter."""
    sub = _ledger_query(f).subquery()
    rows = (
        _session()
        .execute(
            select(
                sub.c.currency,
                sub.c.type,
                func.count(),
                func.coalesce(func.sum(sub.c.cash_delta + sub.c.bonus_delta), 0),
            ).group_by(sub.c.currency, sub.c.type)
        )
        .all()
    )
    out: dict[str, dict[str, Any]] = {}
    for currency, type_, count, total in rows:
        entry = out.setdefault(currency, {"count": 0, "by_type": {}})
        entry["count"] += count
        entry["by_type"][type_] = {"count": count, "amount": format_minor(int(total), currency)}
    return out


def transaction_json(tx: LedgerTransaction) -> dict[str, Any]:
    c = tx.currency
    return {
        "id": tx.id,
        "user_id": tx.user_id,
        "type": tx.type,
        "amount": format_minor(tx.cash_delta + tx.bonus_delta, c),
        "cash_amount": format_minor(tx.cash_delta, c),
        "bonus_amount": format_minor(tx.bonus_delta, c),
        "held_amount": format_minor(tx.held_delta, c),
        "balance_after": format_minor(tx.balance_after, c),
        "bonus_balance_after": format_minor(tx.bonus_balance_after, c),
        "currency": c,
        "status": "completed",
        "description": tx.description,
        "source": tx.source,
        "reference_type": tx.reference_type,
        "reference_id": tx.reference_id,
        "created_at": tx.created_at,
    }


def wallet_json(w: Wallet) -> dict[str, Any]:
    return {
        "currency": w.currency,
        "balance": format_minor(w.balance, w.currency),
        "bonus_balance": format_minor(w.bonus_balance, w.currency),
        "held_balance": format_minor(w.held_balance, w.currency),
        "total_balance": format_minor(w.balance + w.bonus_balance, w.currency),
    }


def posting_json(p: Posting) -> dict[str, Any]:
    c = p.currency
    return {
        "transaction_id": p.transaction_id,
        "user_id": p.user_id,
        "type": p.type,
        "amount": format_minor(p.cash_delta + p.bonus_delta + p.held_delta, c),
        "currency": c,
        "balance": format_minor(p.balance, c),
        "bonus_balance": format_minor(p.bonus_balance, c),
        "replayed": p.replayed,
    }


def check_erasable(user_id: int) -> None:
    """``identity.gdpr.erasure_checks``: no erasure while the player holds money (cash or held
    for a withdrawal): it must be paid out first."""
    funded = db.session.scalar(
        select(func.count())
        .select_from(Wallet)
        .where(Wallet.user_id == user_id, (Wallet.balance > 0) | (Wallet.held_balance > 0))
    )
    if funded:
        raise Conflict("Withdraw your balance before asking for erasure", reason="positive_balance")
