"""Payments: gateways, deposits, gateway webhooks and withdrawals.

Invariants:
* Money moves only through ``app.wallet.ledger`` (row lock + ledger); this module owns the
  payment state machine around it:
  deposit    pending -> completed | failed
  withdrawal pending -> approved -> processing -> completed | failed;  pending -> rejected |
             cancelled (approved -> rejected too, before the payout is submitted)
* A webhook is applied under the payment row's lock, and every credit / hold / release / settle
  carries an idempotency key derived from the payment id, unique in the ledger: a webhook
  delivered twice (or racing itself) moves money once.
* A webhook whose amount or currency differ from ours, or names an unknown payment, is refused
  (4xx, nothing moves); mismatches are flagged for review. Every webhook is logged with its
  verdict.
* A withdrawal request holds the funds (ledger ``withdrawal_hold``) in the same transaction
  that creates it; the wallet row lock makes two racing requests unable to hold more than the
  balance. Rejection, cancellation and payout failure release the hold; payout success settles.
* Withdrawals at or above ``WITHDRAWAL_DUAL_APPROVAL_THRESHOLD`` need two different approvers;
  nobody approves their own withdrawal. The payout job is enqueued only after the approval
  committed.
* Gateway secrets are stored encrypted and never serialized.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from stdnum import iban as iban_number

from app.compliance import responsible_gaming as rg
from app.compliance import risk
from app.core import audit, events
from app.core.base import utcnow
from app.core.crypto import decrypt, encrypt
from app.core.db import atomic, lock_one, page_of, parse_row_id
from app.core.errors import (
    AccessDenied,
    AppError,
    Conflict,
    KycRequired,
    NotFound,
    ServiceUnavailable,
    ValidationError,
)
from app.core.extensions import db
from app.core.money import format_minor, parse_minor
from app.core.queues import job
from app.identity.models import User
from app.payments.gateways import ADAPTERS, GatewayAdapter, GatewayConfig, WebhookRejected
from app.payments.gateways.base import PaymentRequest
from app.payments.models import (
    PaymentGateway,
    PaymentTransaction,
    PaymentWebhook,
    WithdrawalApproval,
)


class InvalidSignature(AppError):
    status, code, message = 400, "INVALID_SIGNATURE", "The webhook signature is not valid"


class AmountMismatch(AppError):
    status, code, message = 400, "AMOUNT_MISMATCH", "Amount or currency differ from the payment"


SECRET_FIELDS = ("api_key", "api_secret", "webhook_secret")
GATEWAY_FIELDS = (
    "name",
    "type",
    "adapter",
    "direction",
    "description",
    "logo_url",
    "website_url",
    "api_endpoint",
    "supported_currencies",
    "supported_countries",
    "min_amount",
    "max_amount",
    "processing_time",
    "fees_percentage",
    "fees_fixed",
    "auto_approval",
    "requires_kyc",
    "is_active",
    "config",
)

#: Extra withdrawal rules other domains add (e.g. open bonus wagering); each raises to refuse.
WithdrawalCheck = Callable[[int, int, str], None]
_withdrawal_checks: list[WithdrawalCheck] = []


def register_withdrawal_check(check: WithdrawalCheck) -> None:
    """``check(user_id, amount_minor, currency)`` raises an ``AppError`` to refuse."""
    if check not in _withdrawal_checks:
        _withdrawal_checks.append(check)


#: Called when the player asks to give up restricted funds (``forfeit_bonus``) with a
#: withdrawal: ``hook(user_id, currency, actor)``, inside the withdrawal's transaction and
#: before the checks, so a refused withdrawal forfeits nothing.
WithdrawalForfeit = Callable[[int, str, Any], None]
_withdrawal_forfeits: list[WithdrawalForfeit] = []

#: Called inside a deposit's credit transaction, right after the wallet credit (wallet row
#: locked): ``hook(payment)``. What a hook writes commits or rolls back with the deposit; hooks
#: must not raise for business reasons (a deposit is never refused because of a bonus).
DepositHook = Callable[[PaymentTransaction], None]
_deposit_hooks: list[DepositHook] = []


def register_withdrawal_forfeit(hook: WithdrawalForfeit) -> None:
    if hook not in _withdrawal_forfeits:
        _withdrawal_forfeits.append(hook)


def register_deposit_credited(hook: DepositHook) -> None:
    if hook not in _deposit_hooks:
        _deposit_hooks.append(hook)


# --- gateways --------------------------------------------------------------------------------


def _validate_gateway(gw: PaymentGateway) -> None:
    if gw.adapter not in ADAPTERS:
        raise ValidationError.field("adapter", f"Must be one of: {', '.join(ADAPTERS)}")
    if gw.direction not in ("deposit", "withdrawal", "both"):
        raise ValidationError.field("direction", "Must be deposit, withdrawal or both")
    if not gw.supported_currencies:
        raise ValidationError.field("supported_currencies", "At least one currency is required")
    if gw.min_amount is not None and gw.max_amount is not None and gw.max_amount < gw.min_amount:
        raise ValidationError.field("max_amount", "Must not be below min_amount")
    if not Decimal(0) <= Decimal(gw.fees_percentage or 0) < Decimal(100):
        raise ValidationError.field("fees_percentage", "Must be between 0 and 100")


def _apply_fields(gw: PaymentGateway, data: dict[str, Any]) -> None:
    for key in GATEWAY_FIELDS:
        if key in data:
            setattr(gw, key, data[key])
    for key in SECRET_FIELDS:
        if key in data:
            value = data[key]
            setattr(gw, f"{key}_enc", encrypt(value) if value else None)


def _public_fields(gw: PaymentGateway) -> dict[str, Any]:
    return {k: getattr(gw, k) for k in ("code", *GATEWAY_FIELDS) if k != "config"}


def create_gateway(data: dict[str, Any], actor: Any = None) -> PaymentGateway:
    with atomic():
        code = data["code"].strip().lower()
        if db.session.scalar(select(PaymentGateway.id).where(PaymentGateway.code == code)):
            raise Conflict(f"A gateway with code {code!r} already exists")
        gw = PaymentGateway(
            code=code,
            config={},
            supported_countries=[],
            direction="both",
            fees_percentage=Decimal(0),
            fees_fixed=Decimal(0),
            auto_approval=False,
            requires_kyc=False,
            is_active=True,
        )
        data = {"adapter": code if code in ADAPTERS else "sandbox", **data}
        _apply_fields(gw, data)
        _validate_gateway(gw)
        db.session.add(gw)
        db.session.flush()
        audit.record(
            "gateway.create",
            actor=actor,
            target_type="payment_gateway",
            target_id=gw.id,
            after={**_public_fields(gw), "secrets_set": [k for k in SECRET_FIELDS if data.get(k)]},
        )
    return gw


def get_gateway(gateway_id: int) -> PaymentGateway:
    gw = db.session.get(PaymentGateway, gateway_id)
    if gw is None:
        raise NotFound("Payment gateway not found")
    return gw


def update_gateway(gateway_id: int, data: dict[str, Any], actor: Any = None) -> PaymentGateway:
    with atomic():
        gw = lock_one(PaymentGateway, PaymentGateway.id == gateway_id)
        if gw is None:
            raise NotFound("Payment gateway not found")
        before = _public_fields(gw)
        _apply_fields(gw, data)
        _validate_gateway(gw)
        audit.record(
            "gateway.update",
            actor=actor,
            target_type="payment_gateway",
            target_id=gw.id,
            before=before,
            after={
                **_public_fields(gw),
                "secrets_changed": [k for k in SECRET_FIELDS if k in data],
            },
        )
    return gw


def toggle_gateway(gateway_id: int, actor: Any = None) -> PaymentGateway:
    with atomic():
        gw = lock_one(PaymentGateway, PaymentGateway.id == gateway_id)
        if gw is None:
            raise NotFound("Payment gateway not found")
        gw.is_active = not gw.is_active
        audit.record(
            "gateway.toggle",
            actor=actor,
            target_type="payment_gateway",
            target_id=gw.id,
            after={"is_active": gw.is_active},
        )
    return gw


def all_gateways() -> list[PaymentGateway]:
    return list(db.session.scalars(select(PaymentGateway).order_by(PaymentGateway.id)))


def adapter_for(gw: PaymentGateway) -> GatewayAdapter:
    cls = ADAPTERS.get(gw.adapter)
    if cls is None:
        raise ServiceUnavailable(f"No adapter {gw.adapter!r} for gateway {gw.code}")
    return cls(
        GatewayConfig(
            code=gw.code,
            api_key=decrypt(gw.api_key_enc) if gw.api_key_enc else None,
            api_secret=decrypt(gw.api_secret_enc) if gw.api_secret_enc else None,
            webhook_secret=decrypt(gw.webhook_secret_enc) if gw.webhook_secret_enc else None,
            api_endpoint=gw.api_endpoint,
            config=dict(gw.config or {}),
        )
    )


def webhook_secret_of(code: str) -> str:
    gw = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == code))
    if gw is None or not gw.webhook_secret_enc:
        raise NotFound(f"Gateway {code!r} has no webhook secret")
    return decrypt(gw.webhook_secret_enc)


def to_minor(value: Decimal | None, currency: str) -> int | None:
    """A gateway's configured major-unit figure in ``currency``'s minor units (rounded up for
    minimums would be wrong for fees; we round half up, the usual commercial rule)."""
    if value is None:
        return None
    from app.core.money import exponent

    return int((Decimal(value).scaleb(exponent(currency))).quantize(Decimal(1), ROUND_HALF_UP))


def fee_for(gw: PaymentGateway, amount_minor: int, currency: str) -> int:
    pct = Decimal(gw.fees_percentage or 0)
    variable = (Decimal(amount_minor) * pct / Decimal(100)).quantize(Decimal(1), ROUND_HALF_UP)
    return int(variable) + (to_minor(gw.fees_fixed or Decimal(0), currency) or 0)


def _serves(gw: PaymentGateway, direction: str, currency: str | None, country: str | None) -> bool:
    if not gw.is_active:
        return False
    if direction != "both" and gw.direction not in (direction, "both"):
        return False
    if direction == "withdrawal" and not ADAPTERS[gw.adapter].supports_payouts:
        return False
    if currency and currency not in (gw.supported_currencies or []):
        return False
    countries = gw.supported_countries or []
    return not (countries and country and country.upper() not in countries)


def available_gateways(user: User, direction: str, currency: str | None) -> list[PaymentGateway]:
    """Active gateways that fit the player's country and the currency and direction asked."""
    return [g for g in all_gateways() if _serves(g, direction, currency, user.country)]


def _pick_gateway(
    user: User, direction: str, currency: str, gateway_id: int | None, method: str | None
) -> PaymentGateway:
    candidates = available_gateways(user, direction, currency)
    if gateway_id is not None:
        chosen = [g for g in candidates if g.id == gateway_id]
    elif method:
        m = method.strip().lower()
        chosen = [g for g in candidates if g.code == m] or [g for g in candidates if g.type == m]
    else:
        raise ValidationError.field("method", "A payment method or gateway_id is required")
    if not chosen:
        raise ValidationError.field(
            "gateway_id" if gateway_id is not None else "method",
            f"No active payment method for {direction}s in {currency} matches",
        )
    return chosen[0]


def _check_amount_bounds(gw: PaymentGateway, amount_minor: int, currency: str) -> None:
    low, high = to_minor(gw.min_amount, currency), to_minor(gw.max_amount, currency)
    if low is not None and amount_minor < low:
        raise ValidationError.field(
            "amount", f"The minimum for {gw.name} is {format_minor(low, currency)} {currency}"
        )
    if high is not None and amount_minor > high:
        raise ValidationError.field(
            "amount", f"The maximum for {gw.name} is {format_minor(high, currency)} {currency}"
        )


def _new_public_id() -> str:
    return f"txn_{secrets.token_hex(16)}"


def get_payment(public_id: str, *, user: User | None = None) -> PaymentTransaction:
    query = select(PaymentTransaction).where(PaymentTransaction.public_id == public_id)
    if user is not None:
        query = query.where(PaymentTransaction.user_id == user.id)
    txn = db.session.scalar(query)
    if txn is None:
        raise NotFound("Payment not found")
    return txn


def get_payment_by_id(payment_id: int) -> PaymentTransaction:
    txn = db.session.get(PaymentTransaction, payment_id)
    if txn is None:
        raise NotFound("Payment not found")
    return txn


# --- deposits --------------------------------------------------------------------------------


def create_deposit(
    user: User,
    *,
    amount: Any,
    currency: str | None,
    gateway_id: int | None = None,
    method: str | None = None,
    description: str | None = None,
    return_url: str | None = None,
    cancel_url: str | None = None,
    ip: str | None = None,
) -> PaymentTransaction:
    """Open a pending deposit and get the gateway's payment page for it.

    Two transactions: the payment row is committed first (so a gateway callback can always find
    it), then the gateway is asked for a checkout session outside any DB transaction, then the
    answer is stored. A gateway failure marks the payment failed and answers 503.
    """
    currency = (currency or user.currency).upper()
    try:
        amount_minor = parse_minor(amount, currency)
    except ValueError as exc:
        raise ValidationError.field("amount", str(exc)) from None
    if amount_minor <= 0:
        raise ValidationError.field("amount", "Amount must be greater than zero")
    with atomic():
        # Serialize a player's deposit creations so two cannot both pass the deposit limit.
        lock_one(User, User.id == user.id)
        rg.check_deposit_allowed(user, amount_minor, currency)
        gw = _pick_gateway(user, "deposit", currency, gateway_id, method)
        _check_amount_bounds(gw, amount_minor, currency)
        if gw.requires_kyc and user.kyc_status != "approved":
            raise KycRequired("This payment method needs a verified identity")
        txn = PaymentTransaction(
            public_id=_new_public_id(),
            user_id=user.id,
            gateway_id=gw.id,
            type="deposit",
            status="pending",
            amount_minor=amount_minor,
            currency=currency,
            fee_minor=fee_for(gw, amount_minor, currency),
            description=description,
            return_url=return_url,
            cancel_url=cancel_url,
            ip=ip,
            ledger_refs={},
        )
        db.session.add(txn)
        db.session.flush()
        audit.record(
            "payment.deposit.create",
            actor=user,
            target_type="payment",
            target_id=txn.public_id,
            after={
                "amount": format_minor(amount_minor, currency),
                "currency": currency,
                "gateway": gw.code,
            },
        )
    request = PaymentRequest(
        transaction_id=txn.public_id,
        amount_minor=amount_minor,
        currency=currency,
        user_id=user.id,
        description=description,
        return_url=return_url,
        cancel_url=cancel_url,
    )
    try:
        session = adapter_for(gw).create_deposit(request)
    except Exception as exc:
        current_app.logger.exception("gateway %s refused deposit %s", gw.code, txn.public_id)
        with atomic():
            locked = lock_one(PaymentTransaction, PaymentTransaction.id == txn.id)
            if locked is not None and locked.status == "pending":
                locked.status = "failed"
                locked.reason = f"gateway error: {type(exc).__name__}"
        raise ServiceUnavailable("The payment provider is not reachable, try again") from None
    with atomic():
        txn = lock_one(PaymentTransaction, PaymentTransaction.id == txn.id)
        txn.payment_url = session.payment_url
        txn.gateway_reference = session.gateway_reference
        txn.gateway_response = {"create": session.raw}
    return txn


def deposit_history(user: User, page: int, limit: int) -> tuple[list[PaymentTransaction], int]:
    return _history(user, "deposit", page, limit)


def _history(user: User, type_: str, page: int, limit: int):
    query = select(PaymentTransaction).where(
        PaymentTransaction.user_id == user.id, PaymentTransaction.type == type_
    )
    return page_of(query, PaymentTransaction.id.desc(), page=page, limit=limit)


# --- webhooks --------------------------------------------------------------------------------


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
                risk.flag(**refused.flag)
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


def _notify(user_id: int, kind: str, message: str, **data: Any) -> None:
    events.publish(
        "notification", {"type": kind, "message": message, **data}, room=events.user_room(user_id)
    )


def _deposit_succeeded(txn: PaymentTransaction, event: Any) -> str:
    from app.wallet import ledger as wallet

    if txn.status == "completed":
        return "duplicate"
    if txn.status != "pending":
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
    txn.status = "completed"
    txn.processed_at = utcnow()
    txn.ledger_refs = {**(txn.ledger_refs or {}), "deposit": posting.transaction_id}
    for hook in _deposit_hooks:
        hook(txn)
    _record_response(txn, event)
    audit.record(
        "payment.deposit.complete",
        target_type="payment",
        target_id=txn.public_id,
        after={
            "amount": format_minor(txn.amount_minor, txn.currency),
            "currency": txn.currency,
            "fee": format_minor(txn.fee_minor, txn.currency),
            "ledger_transaction": posting.transaction_id,
        },
    )
    risk.on_deposit_completed(txn)
    _notify(
        txn.user_id,
        "deposit_completed",
        f"Your deposit of {format_minor(txn.amount_minor, txn.currency)} {txn.currency} arrived",
        transaction_id=txn.public_id,
    )
    return "applied"


def _deposit_failed(txn: PaymentTransaction, event: Any) -> str:
    if txn.status == "failed":
        return "duplicate"
    if txn.status != "pending":
        raise _Refused("state_conflict", Conflict(f"Payment is already {txn.status}"))
    txn.status = "failed"
    txn.processed_at = utcnow()
    txn.reason = "declined by the payment provider"
    _record_response(txn, event)
    _notify(
        txn.user_id, "deposit_failed", "Your deposit was declined", transaction_id=txn.public_id
    )
    return "applied"


def _payout_succeeded(txn: PaymentTransaction, event: Any) -> str:
    from app.wallet import ledger as wallet

    if txn.status == "completed":
        return "duplicate"
    if txn.status not in ("processing", "approved"):
        raise _Refused("state_conflict", Conflict(f"Withdrawal is {txn.status}"))
    posting = wallet.settle_hold(
        txn.user_id,
        txn.currency,
        txn.amount_minor,
        idempotency_key=f"withdrawal-settle:{txn.public_id}",
        reference_id=txn.public_id,
    )
    txn.status = "completed"
    txn.processed_at = utcnow()
    txn.ledger_refs = {**(txn.ledger_refs or {}), "settle": posting.transaction_id}
    _record_response(txn, event)
    audit.record(
        "payment.withdrawal.complete",
        target_type="payment",
        target_id=txn.public_id,
        after={"ledger_transaction": posting.transaction_id},
    )
    _notify(
        txn.user_id,
        "withdrawal_completed",
        f"Your withdrawal of {format_minor(txn.amount_minor, txn.currency)} {txn.currency} "
        "was paid out",
        transaction_id=txn.public_id,
    )
    return "applied"


def _release_hold(txn: PaymentTransaction, why: str, actor: Any = None) -> None:
    from app.wallet import ledger as wallet

    posting = wallet.release(
        txn.user_id,
        txn.currency,
        txn.amount_minor,
        idempotency_key=f"withdrawal-release:{txn.public_id}",
        reference_id=txn.public_id,
        actor=actor,
    )
    txn.ledger_refs = {**(txn.ledger_refs or {}), "release": posting.transaction_id, "why": why}


def _payout_failed(txn: PaymentTransaction, event: Any) -> str:
    if txn.status == "failed":
        return "duplicate"
    if txn.status not in ("processing", "approved"):
        raise _Refused("state_conflict", Conflict(f"Withdrawal is {txn.status}"))
    _release_hold(txn, "payout_failed")
    txn.status = "failed"
    txn.processed_at = utcnow()
    txn.reason = "the payment provider could not pay out"
    _record_response(txn, event)
    audit.record("payment.withdrawal.payout_failed", target_type="payment", target_id=txn.public_id)
    _notify(
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


# --- withdrawals -----------------------------------------------------------------------------


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


def mask_details(details: dict[str, Any] | None) -> dict[str, Any] | None:
    if not details:
        return details
    out = dict(details)
    if "iban" in out:
        value = str(out["iban"])
        out["iban"] = value[:4] + "*" * max(len(value) - 8, 0) + value[-4:]
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
    from app.wallet import ledger as wallet

    currency = (currency or user.currency).upper()
    try:
        amount_minor = parse_minor(amount, currency)
    except ValueError as exc:
        raise ValidationError.field("amount", str(exc)) from None
    if amount_minor <= 0:
        raise ValidationError.field("amount", "Amount must be greater than zero")
    if method is None and gateway_id is None:
        method = "sandbox"
    gw = _pick_gateway(user, "withdrawal", currency, gateway_id, method)
    _check_amount_bounds(gw, amount_minor, currency)
    clean = _clean_details(gw, details, iban)
    threshold = int(current_app.config["KYC_WITHDRAWAL_THRESHOLD"])
    if (amount_minor >= threshold or gw.requires_kyc) and user.kyc_status != "approved":
        raise KycRequired(
            "Verify your identity (KYC) before withdrawing this amount",
            threshold=format_minor(threshold, currency),
        )
    with atomic():
        if forfeit_bonus:
            for forfeit in _withdrawal_forfeits:
                forfeit(user.id, currency, user)
        for check in _withdrawal_checks:
            check(user.id, amount_minor, currency)
        txn = PaymentTransaction(
            public_id=_new_public_id(),
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
        db.session.flush()
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
        risk.on_withdrawal_requested(txn)
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
    return _history(user, "withdrawal", page, limit)


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
    with atomic():
        txn = _find_withdrawal(ident, user_id=user.id)
        if txn.status != "pending":
            raise Conflict(f"Only a pending withdrawal can be cancelled; this one is {txn.status}")
        _release_hold(txn, "cancelled", actor=user)
        txn.status = "cancelled"
        txn.processed_at = utcnow()
        audit.record(
            "payment.withdrawal.cancel", actor=user, target_type="payment", target_id=txn.public_id
        )
    return txn


def required_approvals(txn: PaymentTransaction) -> int:
    threshold = int(current_app.config["WITHDRAWAL_DUAL_APPROVAL_THRESHOLD"])
    return 2 if threshold and txn.amount_minor >= threshold else 1


def approve_withdrawal(ident: str | int, staff: User) -> PaymentTransaction:
    from app.core.queues import enqueue_after_commit

    with atomic():
        txn = _find_withdrawal(ident)
        if txn.user_id == staff.id:
            raise AccessDenied("Nobody approves their own withdrawal")
        if txn.status != "pending":
            raise Conflict(f"This withdrawal is {txn.status}, not pending")
        if any(a.approver_id == staff.id for a in txn.approvals):
            raise Conflict("You already approved this withdrawal; a different approver is needed")
        db.session.add(WithdrawalApproval(transaction_id=txn.id, approver_id=staff.id))
        db.session.flush()
        db.session.refresh(txn, ["approvals"])
        needed = required_approvals(txn)
        done = len(txn.approvals)
        if done >= needed:
            txn.status = "approved"
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
        if txn.status not in ("pending", "approved"):
            raise Conflict(f"This withdrawal is {txn.status}; it can no longer be rejected")
        _release_hold(txn, "rejected", actor=staff)
        txn.status = "rejected"
        txn.reason = reason.strip()
        txn.processed_at = utcnow()
        audit.record(
            "payment.withdrawal.reject",
            actor=staff,
            target_type="payment",
            target_id=txn.public_id,
            reason=txn.reason,
        )
        _notify(
            txn.user_id,
            "withdrawal_rejected",
            f"Your withdrawal was rejected: {txn.reason}. The funds are back in your balance",
            transaction_id=txn.public_id,
        )
    return txn


@job
def submit_payout(txn_id: int) -> None:
    """RQ job (queue ``payouts``): hand an approved withdrawal to its gateway."""
    with atomic():
        txn = lock_one(PaymentTransaction, PaymentTransaction.id == txn_id)
        if txn is None or txn.status != "approved":
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
        txn.status = "processing"
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


# --- staff lists -----------------------------------------------------------------------------


def list_payments(
    type_: str,
    *,
    status: str | None = None,
    user_id: int | None = None,
    gateway_id: int | None = None,
    currency: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    page: int = 1,
    limit: int = 20,
) -> tuple[list[PaymentTransaction], int, list[dict[str, Any]]]:
    criteria = [PaymentTransaction.type == type_]
    if status:
        criteria.append(PaymentTransaction.status == status)
    if user_id:
        criteria.append(PaymentTransaction.user_id == user_id)
    if gateway_id:
        criteria.append(PaymentTransaction.gateway_id == gateway_id)
    if currency:
        criteria.append(PaymentTransaction.currency == currency.upper())
    if date_from:
        criteria.append(PaymentTransaction.created_at >= date_from)
    if date_to:
        criteria.append(PaymentTransaction.created_at < date_to)
    total = db.session.scalar(select(func.count(PaymentTransaction.id)).where(*criteria))
    rows = db.session.scalars(
        select(PaymentTransaction)
        .where(*criteria)
        .order_by(PaymentTransaction.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    ).all()
    summary_rows = db.session.execute(
        select(
            PaymentTransaction.status,
            PaymentTransaction.currency,
            func.count(PaymentTransaction.id),
            func.sum(PaymentTransaction.amount_minor),
            func.sum(PaymentTransaction.fee_minor),
        )
        .where(*criteria)
        .group_by(PaymentTransaction.status, PaymentTransaction.currency)
        .order_by(PaymentTransaction.status, PaymentTransaction.currency)
    ).all()
    summary = [
        {
            "status": s,
            "currency": c,
            "count": int(n),
            "amount": format_minor(int(total_amount or 0), c),
            "fees": format_minor(int(fees or 0), c),
        }
        for s, c, n, total_amount, fees in summary_rows
    ]
    return list(rows), int(total or 0), summary
