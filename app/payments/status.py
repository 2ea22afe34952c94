"""A payment's status: the one place it changes, and the event that tells the player.

Invariants:
* A status moves only through the payment type's machine (``DEPOSIT_STATES`` /
  ``WITHDRAWAL_STATES``); a move the machine forbids raises ``IllegalTransition`` and
  announces nothing.
* Every status a payment takes, from its creation (``pending``) on, is announced to the
  player's room as ``payment:status:update``. The event is durable: an outbox row written in
  the payment's own transaction, so it exists iff the change committed and reaches the player
  even if Redis is down at that moment (relayed once it is back).
"""

from __future__ import annotations

from typing import Any

from app.core import events
from app.core.base import utcnow
from app.core.money import format_minor
from app.core.states import StateMachine
from app.payments.models import DEPOSIT_STATES, WITHDRAWAL_STATES, PaymentTransaction

EVENT = "payment:status:update"


def machine_of(txn: PaymentTransaction) -> StateMachine:
    return DEPOSIT_STATES if txn.type == "deposit" else WITHDRAWAL_STATES


def move(txn: PaymentTransaction, to: str, *, reason: str | None = None) -> None:
    """Move ``txn`` to ``to`` (with the player-facing ``reason``, if any) and announce it."""
    previous = txn.status
    machine_of(txn).move(txn, to)
    if reason is not None:
        txn.reason = reason
    announce(txn, previous)


def announce(txn: PaymentTransaction, previous: str | None = None) -> None:
    """Tell the player's sockets the payment's current status (a new payment: ``previous``
    None). Needs the row's id, so a new payment is flushed first."""
    events.publish(EVENT, payload(txn, previous), room=events.user_room(txn.user_id), durable=True)


def payload(txn: PaymentTransaction, previous: str | None = None) -> dict[str, Any]:
    return {
        "type": txn.type,
        "id": txn.id,
        "transaction_id": txn.public_id,
        "status": txn.status,
        "previous_status": previous,
        "amount": format_minor(txn.amount_minor, txn.currency),
        "currency": txn.currency,
        "reason": txn.reason,
        "timestamp": utcnow().isoformat(),
    }
