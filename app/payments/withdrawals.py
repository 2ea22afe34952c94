"""Withdrawals: pending -> approved -> processing -> completed | failed; pending -> rejected |
cancelled (approved -> rejected too, before the payout is submitted).

Invariants:
* A request holds the funds (ledger ``withdrawal_hold``) in the transaction that creates it;
  the wallet row lock makes two racing requests unable to hold more than the balance.
  Rejection, cancellation and payout failure release the hold; payout success settles.
* A player cancels (reverses) a pending withdrawal only while ``withdrawal_reversal_allowed``
  (default off: UKGC forbids reverse withdrawals).
* At or above ``WITHDRAWAL_DUAL_APPROVAL_THRESHOLD`` two different approvers are needed;
  nobody approves their own withdrawal. The payout job is enqueued only after the approval
  committed.
* Every status change goes through ``status.move`` (the player's ``payment:status:update``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from stdnum import iban as iban_number

from app.core import audit, events, opsettings
from app.core.base import utcnow
from app.core.db import atomic, lock_one, parse_row_id
from app.core.errors import (
    AccessDenied,
    Conflict,
    KycRequired,
    NotFound,
    ValidationError,
)
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import format_minor, parse_minor
from app.core.queues import enqueue_after_commit, job
from app.identity.models import User
from app.payments import hooks, status
from app.payments.gateways.base import PaymentRequest
from app.payments.gateways_admin import adapter_for, check_amount_bounds, fee_for, pick_gateway
from app.payments.models import (
    WITHDRAWAL_STATES,
    PaymentGateway,
    PaymentTransaction,
    WithdrawalApproval,
)
from app.payments.records import history_of, new_public_id, notify_player
from app.wallet import ledger as wallet


def release_hold(txn: PaymentTransaction, why: str, actor: Any = None) -> None:
    posting = wallet.release(
        txn.user_id,
        txn.currency,
        txn.amount_minor,
        idempotency_key=f"withdrawal-release:{txn.public_id}",
        reference_id=txn.public_id,
        actor=actor,
    )
    txn.ledger_refs = {**(txn.ledger_refs or {}), "release": posting.transaction_id, "why": why}


def _clean_details(gw: PaymentGateway, details: dict[str, Any] | None, iban: str | None):
    out = {k: v for k, v in (details or {}).items() if isinstance(v, str | int | bool)}
    if iban is not None:
        out["iban"] = iban
    if "iban" in out:
        value = iban_number.compact(str(out["iban"]))
        if not iban_number.is_valid(value):
            raise ValidationError.field("iban", "This IBAN is not valid")
        out["iban"] = value
    if gw.type in ("bank", "bank_transfer") and "iban" not in out:
        raise ValidationError.field("iban", "An IBAN is required for bank withdrawals")
    return out


def request_withdrawal(
    user: User,
    *,
    amount: Any,
    currency: str | None = None,
    method: str | None = None,
    gateway_id: int | None = None,
    iban: str | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
    forfeit_bonus: bool = False,
) -> PaymentTransaction:
    currency = (currency or user.currency).upper()
    try:
        amount_minor = parse_minor(amount, currency)
    except ValueError as exc:
        raise ValidationError.field("amount", str(exc)) from None
    if amount_minor <= 0:
        raise ValidationError.field("amount", "Amount must be greater than zero")
    if method is None and gateway_id is None:
        method = "sandbox"
    gw = pick_gateway(user, "withdrawal", currency, gateway_id, method)
    check_amount_bounds(gw, amount_minor, currency)
    clean = _clean_details(gw, details, iban)
    threshold = int(opsettings.value("kyc_withdrawal_threshold"))
    if (amount_minor >= threshold or gw.requires_kyc) and user.kyc_status != "approved":
        raise KycRequired(
            "Verify your identity (KYC) before withdrawing this amount",
            threshold=format_minor(threshold, currency),
        )
    with atomic():
        if forfeit_bonus:
            hooks.withdrawal_forfeits(user.id, currency, user)
        hooks.withdrawal_checks(user.id, amount_minor, currency)
        txn = PaymentTransaction(
            public_id=new_public_id(),
            user_id=user.id,
            gateway_id=gw.id,
            type="withdrawal",
            status="pending",
            amount_minor=amount_minor,
            currency=currency,
            fee_minor=fee_for(gw, amount_minor, currency),
            details=clean,
            ip=ip,
            ledger_refs={},
        )
        db.session.add(txn)
        db.session.flush()  # the id, for the hold's reference and the status event
        status.announce(txn)
        # The wallet row lock inside hold() serializes racing requests; the second one sees
        # the reduced cash balance and gets INSUFFICIENT_BALANCE.
        posting = wallet.hold(
            user.id,
            currency,
            amount_minor,
            idempotency_key=f"withdrawal-hold:{txn.public_id}",
            reference_id=txn.public_id,
            actor=user,
        )
        txn.ledger_refs = {"hold": posting.transaction_id}
        audit.record(
            "payment.withdrawal.request",
            actor=user,
            target_type="payment",
            target_id=txn.public_id,
            after={
                "amount": format_minor(amount_minor, currency),
                "currency": currency,
                "gateway": gw.code,
                "ledger_transaction": posting.transaction_id,
            },
        )
        hooks.withdrawal_requested(txn)
        events.publish(
            "admin.notification",
            {
                "type": "withdrawal_requested",
                "transaction_id": txn.public_id,
                "id": txn.id,
                "user_id": user.id,
                "username": user.username,
                "amount": format_minor(amount_minor, currency),
                "currency": currency,
            },
            room="admin",
        )
    return txn


def withdrawal_history(user: User, page: int, limit: int):
    return history_of(user, "withdrawal", page, limit)


def _find_withdrawal(ident: str | int, *, user_id: int | None = None) -> PaymentTransaction:
    criteria = [PaymentTransaction.type == "withdrawal"]
    row_id = parse_row_id(ident)
    if row_id is not None:
        criteria.append(PaymentTransaction.id == row_id)
    else:
        criteria.append(PaymentTransaction.public_id == str(ident))
    if user_id is not None:
        criteria.append(PaymentTransaction.user_id == user_id)
    txn = lock_one(PaymentTransaction, *criteria)
    if txn is None:
        raise NotFound("Withdrawal not found")
    return txn


def cancel_withdrawal(user: User, ident: str | int) -> PaymentTransaction:
    """The player takes a pending withdrawal back: only where ``withdrawal_reversal_allowed``."""
    with atomic():
        txn = _find_withdrawal(ident, user_id=user.id)
        if not WITHDRAWAL_STATES.allows(txn.status, "cancelled"):
            raise Conflict(f"Only a pending withdrawal can be cancelled; this one is {txn.status}")
        if not opsettings.value("withdrawal_reversal_allowed"):
            # UKGC: no reverse withdrawals; the held funds never go back to the playable
            # balance at the player's request (staff may still reject the withdrawal).
            raise Conflict(
                "A withdrawal cannot be reversed into your balance once requested",
                reason="withdrawal_reversal_not_allowed",
            )
        release_hold(txn, "cancelled", actor=user)
        status.move(txn, "cancelled")
        txn.processed_at = utcnow()
        audit.record(
            "payment.withdrawal.cancel", actor=user, target_type="payment", target_id=txn.public_id
        )
    return txn


def required_approvals(txn: PaymentTransaction) -> int:
    threshold = int(opsettings.value("withdrawal_dual_approval_threshold"))
    return 2 if threshold and txn.amount_minor >= threshold else 1


def approve_withdrawal(ident: str | int, staff: User) -> PaymentTransaction:
    with atomic():
        txn = _find_withdrawal(ident)
        if txn.user_id == staff.id:
            raise AccessDenied("Nobody approves their own withdrawal")
        if not WITHDRAWAL_STATES.allows(txn.status, "approved"):
            raise Conflict(f"This withdrawal is {txn.status}, not pending")
        if any(a.approver_id == staff.id for a in txn.approvals):
            raise Conflict("You already approved this withdrawal; a different approver is needed")
        db.session.add(WithdrawalApproval(transaction_id=txn.id, approver_id=staff.id))
        db.session.flush()
        db.session.refresh(txn, ["approvals"])
        needed = required_approvals(txn)
        done = len(txn.approvals)
        if done >= needed:
            status.move(txn, "approved")
            enqueue_after_commit(submit_payout, txn.id, queue_name="payouts")
        audit.record(
            "payment.withdrawal.approve",
            actor=staff,
            target_type="payment",
            target_id=txn.public_id,
            after={"approvals": done, "required": needed, "status": txn.status},
        )
    return txn


def reject_withdrawal(ident: str | int, staff: User, reason: str) -> PaymentTransaction:
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required")
    with atomic():
        txn = _find_withdrawal(ident)
        if not WITHDRAWAL_STATES.allows(txn.status, "rejected"):
            raise Conflict(f"This withdrawal is {txn.status}; it can no longer be rejected")
        release_hold(txn, "rejected", actor=staff)
        status.move(txn, "rejected", reason=reason.strip())
        txn.processed_at = utcnow()
        audit.record(
            "payment.withdrawal.reject",
            actor=staff,
            target_type="payment",
            target_id=txn.public_id,
            reason=txn.reason,
        )
        notify_player(
            txn.user_id,
            "withdrawal_rejected",
            Msg(
                "Your withdrawal was rejected: %(reason)s. The funds are back in your balance",
                reason=txn.reason,
            ),
            transaction_id=txn.public_id,
        )
    return txn


@job
def submit_payout(txn_id: int) -> None:
    """RQ job (queue ``payouts``): hand an approved withdrawal to its gateway."""
    with atomic():
        txn = lock_one(PaymentTransaction, PaymentTransaction.id == txn_id)
        if txn is None or not WITHDRAWAL_STATES.allows(txn.status, "processing"):
            return  # rejected meanwhile, or a retried job that already ran
        adapter = adapter_for(txn.gateway)
        # The payment id doubles as the gateway's idempotency key, so a retried job after a
        # crash between the gateway call and our commit cannot pay twice.
        submission = adapter.create_payout(
            PaymentRequest(
                transaction_id=txn.public_id,
                amount_minor=txn.amount_minor,
                currency=txn.currency,
                user_id=txn.user_id,
                details=txn.details,
            )
        )
        status.move(txn, "processing")
        txn.gateway_reference = submission.gateway_reference
        response = dict(txn.gateway_response or {})
        response["payout"] = submission.raw
        txn.gateway_response = response
        audit.record(
            "payment.withdrawal.payout_submitted",
            target_type="payment",
            target_id=txn.public_id,
            after={"gateway_reference": submission.gateway_reference},
        )


def check_erasable(user_id: int) -> None:
    """``identity.gdpr.erasure_checks``: no erasure while a withdrawal is still open."""
    open_ = db.session.scalar(
        select(func.count())
        .select_from(PaymentTransaction)
        .where(
            PaymentTransaction.user_id == user_id,
            PaymentTransaction.type == "withdrawal",
            PaymentTransaction.status.in_(("pending", "approved", "processing")),
        )
    )
    if open_:
        raise Conflict(
            "A withdrawal is still pending; erasure can follow once it is settled",
            reason="pending_withdrawal",
        )
