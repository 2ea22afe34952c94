"""Gateway webhooks: verified, applied once under the payment row's lock, always logged.

Invariants:
* Every credit / hold / release / settle carries an idempotency key derived from the payment
  id, unique in the ledger: a webhook delivered twice (or racing itself) moves money once.
* A webhook whose signature fails is ``INVALID_SIGNATURE``; an authentic one missing a field
  or with a mistyped one is ``VALIDATION_ERROR`` naming the field. A webhook whose amount or
  currency differ from ours, or names an unknown payment, is refused (4xx, nothing moves);
  mismatches are flagged for review. Every webhook is logged with its verdict.
* A "paid" for a deposit that expired unpaid still credits it (the player paid); a "paid"
  after a decline is refused and flagged for staff.
* Every status change goes through ``status.move`` (the player's ``payment:status:update``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.core import audit, events
from app.core.base import utcnow
from app.core.db import atomic, lock_one
from app.core.errors import (
    AppError,
    Conflict,
    NotFound,
    ValidationError,
)
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import format_minor
from app.payments import hooks, status
from app.payments.gateways import WebhookMalformed, WebhookRejected
from app.payments.gateways_admin import adapter_for
from app.payments.models import (
    DEPOSIT_STATES,
    WITHDRAWAL_STATES,
    PaymentGateway,
    PaymentTransaction,
    PaymentWebhook,
)
from app.payments.records import notify_player
from app.payments.withdrawals import release_hold
from app.wallet import ledger as wallet


class InvalidSignature(AppError):
    status, code, message = 400, "INVALID_SIGNATURE", "The webhook signature is not valid"


class AmountMismatch(AppError):
    status, code, message = 400, "AMOUNT_MISMATCH", "Amount or currency differ from the payment"


class _Refused(Exception):
    def __init__(self, verdict: str, error: AppError, flag: dict[str, Any] | None = None):
        super().__init__(verdict)
        self.verdict, self.error, self.flag = verdict, error, flag


def _log_webhook(
    code: str,
    event: str | None,
    txn_id: str | None,
    valid: bool,
    verdict: str,
    body: bytes,
    ip: str | None,
) -> None:
    db.session.add(
        PaymentWebhook(
            gateway_code=code[:50],
            event=(event or None) and event[:64],
            transaction_public_id=(txn_id or None) and txn_id[:64],
            signature_valid=valid,
            verdict=verdict,
            body=body.decode("utf-8", "replace")[:20000],
            ip=ip,
        )
    )


def handle_webhook(code: str, body: bytes, headers: dict[str, str], ip: str | None) -> str:
    """Verify, parse and apply one gateway webhook. Returns the verdict (``applied``,
    ``duplicate``, ``ignored``); raises an ``AppError`` (4xx) when refused."""
    gw = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == code))
    if gw is None:
        raise NotFound("Unknown payment gateway")
    adapter = adapter_for(gw)
    try:
        adapter.verify_webhook(body, headers)
        event = adapter.parse_webhook(body, headers)
    except WebhookRejected as exc:
        with atomic():
            _log_webhook(code, None, None, False, "invalid_signature", body, ip)
        raise InvalidSignature(f"Webhook refused: {exc}") from None
    except WebhookMalformed as exc:
        # Authentic but unusable: the sender must fix the body, not its signature.
        with atomic():
            _log_webhook(code, None, None, True, "invalid_payload", body, ip)
        raise ValidationError.field(exc.field, exc.message) from None
    if event is None:
        with atomic():
            _log_webhook(code, None, None, True, "ignored", body, ip)
        return "ignored"
    try:
        with atomic():
            verdict = _apply_event(gw, event)
            _log_webhook(code, event.event, event.transaction_id, True, verdict, body, ip)
    except _Refused as refused:
        with atomic():
            _log_webhook(code, event.event, event.transaction_id, True, refused.verdict, body, ip)
            if refused.flag is not None:
                hooks.refusal_flags(**refused.flag)
        raise refused.error from None
    return verdict


def _apply_event(gw: PaymentGateway, event: Any) -> str:
    txn = lock_one(
        PaymentTransaction,
        PaymentTransaction.public_id == event.transaction_id,
        PaymentTransaction.gateway_id == gw.id,
    )
    if txn is None:
        raise _Refused("unknown_transaction", NotFound("Unknown transaction"))
    expected_type = "deposit" if event.event.startswith("payment.") else "withdrawal"
    if txn.type != expected_type:
        raise _Refused("wrong_type", Conflict(f"{event.event} does not apply to a {txn.type}"))
    if event.amount_minor is not None and (
        event.amount_minor != txn.amount_minor or event.currency != txn.currency
    ):
        raise _Refused(
            "amount_mismatch",
            AmountMismatch(),
            flag={
                "kind": "webhook_amount_mismatch",
                "user_id": txn.user_id,
                "reference": f"payment:{txn.public_id}",
                "severity": "high",
                "details": {
                    "gateway": gw.code,
                    "event": event.event,
                    "expected": f"{format_minor(txn.amount_minor, txn.currency)} {txn.currency}",
                    "received": f"{event.amount_minor} minor {event.currency}",
                },
            },
        )
    if event.instrument and not txn.instrument_fingerprint:
        # Before the handler: the deposit hooks (welcome-bonus checks) read it.
        txn.instrument_fingerprint = event.instrument
    handler = {
        "payment.succeeded": _deposit_succeeded,
        "payment.failed": _deposit_failed,
        "payout.succeeded": _payout_succeeded,
        "payout.failed": _payout_failed,
    }[event.event]
    return handler(txn, event)


def _record_response(txn: PaymentTransaction, event: Any) -> None:
    response = dict(txn.gateway_response or {})
    response[event.event] = event.raw
    txn.gateway_response = response
    if event.gateway_reference and not txn.gateway_reference:
        txn.gateway_reference = event.gateway_reference


def _deposit_succeeded(txn: PaymentTransaction, event: Any) -> str:
    if txn.status == "completed":
        return "duplicate"
    # ``expired`` -> completed is allowed: the player paid after we stopped waiting.
    if not DEPOSIT_STATES.allows(txn.status, "completed"):
        raise _Refused(
            "state_conflict",
            Conflict(f"Payment is {txn.status}; a late success needs manual review"),
            flag={
                "kind": "late_payment_success",
                "user_id": txn.user_id,
                "reference": f"payment:{txn.public_id}",
                "severity": "high",
                "details": {"status": txn.status},
            },
        )
    posting = wallet.post(
        txn.user_id,
        txn.currency,
        "deposit",
        cash_delta=txn.amount_minor,
        source="payments",
        idempotency_key=f"deposit:{txn.public_id}",
        reference_type="payment",
        reference_id=txn.public_id,
        description=f"Deposit via {txn.gateway.name}",
        meta={"fee": txn.fee_minor, "gateway": txn.gateway.code},
    )
    previous = txn.status
    txn.reason = None  # an expired deposit's "not paid in time" no longer holds
    status.move(txn, "completed")
    txn.processed_at = utcnow()
    txn.ledger_refs = {**(txn.ledger_refs or {}), "deposit": posting.transaction_id}
    hooks.deposit_credited(txn)
    _record_response(txn, event)
    audit.record(
        "payment.deposit.complete",
        target_type="payment",
        target_id=txn.public_id,
        before={"status": previous},
        after={
            "amount": format_minor(txn.amount_minor, txn.currency),
            "currency": txn.currency,
            "fee": format_minor(txn.fee_minor, txn.currency),
            "ledger_transaction": posting.transaction_id,
        },
    )
    hooks.deposit_completed(txn)
    notify_player(
        txn.user_id,
        "deposit_completed",
        Msg(
            "Your deposit of %(amount)s %(currency)s arrived",
            amount=format_minor(txn.amount_minor, txn.currency),
            currency=txn.currency,
        ),
        transaction_id=txn.public_id,
    )
    return "applied"


def _deposit_failed(txn: PaymentTransaction, event: Any) -> str:
    if txn.status == "failed":
        return "duplicate"
    if not DEPOSIT_STATES.allows(txn.status, "failed"):
        raise _Refused("state_conflict", Conflict(f"Payment is already {txn.status}"))
    status.move(txn, "failed", reason="declined by the payment provider")
    txn.processed_at = utcnow()
    _record_response(txn, event)
    notify_player(
        txn.user_id,
        "deposit_failed",
        Msg("Your deposit was declined"),
        transaction_id=txn.public_id,
    )
    return "applied"


def _payout_succeeded(txn: PaymentTransaction, event: Any) -> str:
    if txn.status == "completed":
        return "duplicate"
    if not WITHDRAWAL_STATES.allows(txn.status, "completed"):
        raise _Refused("state_conflict", Conflict(f"Withdrawal is {txn.status}"))
    posting = wallet.settle_hold(
        txn.user_id,
        txn.currency,
        txn.amount_minor,
        idempotency_key=f"withdrawal-settle:{txn.public_id}",
        reference_id=txn.public_id,
    )
    status.move(txn, "completed")
    txn.processed_at = utcnow()
    txn.ledger_refs = {**(txn.ledger_refs or {}), "settle": posting.transaction_id}
    _record_response(txn, event)
    audit.record(
        "payment.withdrawal.complete",
        target_type="payment",
        target_id=txn.public_id,
        after={"ledger_transaction": posting.transaction_id},
    )
    notify_player(
        txn.user_id,
        "withdrawal_completed",
        f"Your withdrawal of {format_minor(txn.amount_minor, txn.currency)} {txn.currency} "
        "was paid out",
        transaction_id=txn.public_id,
    )
    return "applied"


def _payout_failed(txn: PaymentTransaction, event: Any) -> str:
    if txn.status == "failed":
        return "duplicate"
    if not WITHDRAWAL_STATES.allows(txn.status, "failed"):
        raise _Refused("state_conflict", Conflict(f"Withdrawal is {txn.status}"))
    release_hold(txn, "payout_failed")
    status.move(txn, "failed", reason="the payment provider could not pay out")
    txn.processed_at = utcnow()
    _record_response(txn, event)
    audit.record("payment.withdrawal.payout_failed", target_type="payment", target_id=txn.public_id)
    notify_player(
        txn.user_id,
        "withdrawal_failed",
        "Your withdrawal could not be paid out; the funds are back in your balance",
        transaction_id=txn.public_id,
    )
    events.publish(
        "admin.notification",
        {"type": "payout_failed", "transaction_id": txn.public_id, "user_id": txn.user_id},
        room="admin",
    )
    return "applied"
