"""Deposits: pending -> completed | failed | expired; expired -> completed | failed.

A deposit is created pending at the gateway (after the responsible-gaming deposit check,
under the player's row lock so two creations cannot both pass the limit); the gateway's
webhook (``app.payments.webhooks``) credits it once.

Invariants:
* A pending deposit nobody paid within ``DEPOSIT_PENDING_TTL_MINUTES`` no longer counts
  toward deposit limits (``counts_toward_limits``), from the moment its TTL is over whether or
  not the expiry job has run yet; the job (``expire_stale``) then records it as ``expired``,
  one row lock and audit row each, re-checked under the lock so a webhook racing it wins.
* Expiry never loses money: a gateway's late "paid" still credits an expired deposit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, or_, select

from app.core import audit, opsettings, redirects
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, lock_one
from app.core.errors import (
    KycRequired,
    ServiceUnavailable,
    ValidationError,
)
from app.core.extensions import db
from app.core.money import format_minor, parse_minor
from app.identity.models import User
from app.payments import hooks, status
from app.payments.gateways.base import PaymentRequest
from app.payments.gateways_admin import adapter_for, check_amount_bounds, fee_for, pick_gateway
from app.payments.models import (
    DEPOSIT_STATES,
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
    for name, target in (("return_url", return_url), ("cancel_url", cancel_url)):
        # The gateway (and the sandbox page) sends the player there: never an open redirect.
        if target and not redirects.is_allowed(target):
            raise ValidationError.field(name, redirects.NOT_ALLOWED)
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
        db.session.flush()  # the id, for the audit row and the status event
        status.announce(txn)
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
            if locked is not None and DEPOSIT_STATES.allows(locked.status, "failed"):
                status.move(locked, "failed", reason=f"gateway error: {type(exc).__name__}")
                locked.processed_at = utcnow()
        raise ServiceUnavailable("The payment provider is not reachable, try again") from None
    with atomic():
        txn = lock_existing(PaymentTransaction, PaymentTransaction.id == txn.id)
        txn.payment_url = session.payment_url
        txn.gateway_reference = session.gateway_reference
        txn.gateway_response = {"create": session.raw}
    return txn


def deposit_history(user: User, page: int, limit: int) -> tuple[list[PaymentTransaction], int]:
    return history_of(user, "deposit", page, limit)


def pending_ttl() -> timedelta | None:
    """How long a deposit waits for its payment (``None``: forever, the setting is 0)."""
    minutes = int(opsettings.value("deposit_pending_ttl_minutes"))
    return timedelta(minutes=minutes) if minutes > 0 else None


def counts_toward_limits(now: datetime | None = None) -> ColumnElement[bool]:
    """The deposits a deposit limit counts (a WHERE clause): completed ones and pending ones
    still within their TTL. One past it counts no more, even before the job marks it expired;
    if it is paid late it counts again, as completed."""
    ttl = pending_ttl()
    if ttl is None:
        return PaymentTransaction.status.in_(("pending", "completed"))
    return or_(
        PaymentTransaction.status == "completed",
        and_(
            PaymentTransaction.status == "pending",
            PaymentTransaction.created_at > (now or utcnow()) - ttl,
        ),
    )


def expire_stale(older_than: timedelta | None = None, *, now: datetime | None = None) -> int:
    """Expire pending deposits created more than ``older_than`` (default: the TTL setting)
    ago; returns how many. Each in its own transaction under the payment's row lock and
    re-checked there, so a webhook that credited it meanwhile wins and a run racing another
    expires nothing twice. Audited (``payment.deposit.expire``) and announced to the player."""
    ttl = older_than if older_than is not None else pending_ttl()
    if ttl is None:
        return 0
    now = now or utcnow()
    cutoff = now - ttl
    due = db.session.scalars(
        select(PaymentTransaction.id)
        .where(
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status.in_(DEPOSIT_STATES.sources("expired")),
            PaymentTransaction.created_at <= cutoff,
        )
        .order_by(PaymentTransaction.id)
    ).all()
    minutes = int(ttl.total_seconds() // 60)
    done = 0
    for payment_id in due:
        with atomic():
            # refresh: a copy this session read earlier may predate the webhook's commit.
            txn = lock_one(PaymentTransaction, PaymentTransaction.id == payment_id, refresh=True)
            if txn is None or not DEPOSIT_STATES.allows(txn.status, "expired"):
                continue  # paid or declined since the query
            status.move(txn, "expired", reason=f"not paid within {minutes} minutes")
            txn.processed_at = now
            audit.record(
                "payment.deposit.expire",
                target_type="payment",
                target_id=txn.public_id,
                before={"status": "pending"},
                after={
                    "status": "expired",
                    "amount": format_minor(txn.amount_minor, txn.currency),
                    "currency": txn.currency,
                    "created_at": txn.created_at.isoformat(),
                },
            )
            done += 1
    return done
