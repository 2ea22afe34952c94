"""Deposits: pending -> completed | failed.

A deposit is created pending at the gateway (after the responsible-gaming deposit check,
under the player's row lock so two creations cannot both pass the limit); the gateway's
webhook (``app.payments.webhooks``) credits it once.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from app.core import audit
from app.core.db import atomic, lock_existing, lock_one
from app.core.errors import (
    KycRequired,
    ServiceUnavailable,
    ValidationError,
)
from app.core.extensions import db
from app.core.money import format_minor, parse_minor
from app.identity.models import User
from app.payments import hooks
from app.payments.gateways.base import PaymentRequest
from app.payments.gateways_admin import adapter_for, check_amount_bounds, fee_for, pick_gateway
from app.payments.models import (
    PaymentTransaction,
)
from app.payments.records import history_of, new_public_id


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
        hooks.deposit_checks(user, amount_minor, currency)
        gw = pick_gateway(user, "deposit", currency, gateway_id, method)
        check_amount_bounds(gw, amount_minor, currency)
        if gw.requires_kyc and user.kyc_status != "approved":
            raise KycRequired("This payment method needs a verified identity")
        txn = PaymentTransaction(
            public_id=new_public_id(),
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
        txn = lock_existing(PaymentTransaction, PaymentTransaction.id == txn.id)
        txn.payment_url = session.payment_url
        txn.gateway_reference = session.gateway_reference
        txn.gateway_response = {"create": session.raw}
    return txn


def deposit_history(user: User, page: int, limit: int) -> tuple[list[PaymentTransaction], int]:
    return history_of(user, "deposit", page, limit)
