"""The sandbox gateway's remote side: its hosted checkout page and the webhooks it sends.

A real gateway runs these on its own servers. Here the hosted page's Pay/Decline and the
sandbox payouts queue ``deliver_event``, which signs and POSTs the webhook to our public
endpoint over HTTP, so deposits and payouts take the same path as with a remote gateway.
"""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import select

from app.core.errors import Conflict, NotFound
from app.core.extensions import db, redis_store
from app.core.queues import enqueue, job
from app.payments import gateways_admin
from app.payments.gateways import sandbox
from app.payments.models import PaymentTransaction

log = logging.getLogger(__name__)


def submit(public_id: str, outcome: str, account: str | None = None) -> PaymentTransaction:
    """The sandbox's hosted page was submitted: queue the signed webhook the 'gateway' sends.

    Pay/Decline is accepted once per payment (Redis ``SET NX``), like a real checkout session.
    ``account`` (the card/account number typed on the page) reaches the casino only as the
    gateway's stable ``account_reference``.
    """
    txn = db.session.scalar(
        select(PaymentTransaction).where(PaymentTransaction.public_id == public_id)
    )
    if txn is None or txn.type != "deposit" or txn.gateway.adapter != "sandbox":
        raise NotFound("Checkout session not found")
    if not gateways_admin.adapter_enabled(txn.gateway.adapter):
        raise NotFound("Checkout session not found")
    if txn.status != "pending":
        raise Conflict(f"This payment is already {txn.status}")
    if not redis_store.client().set(f"jx:sandbox:checkout:{public_id}", outcome, nx=True, ex=86400):
        raise Conflict("This checkout was already submitted")
    event = "payment.succeeded" if outcome == "pay" else "payment.failed"
    enqueue(
        deliver_event,
        txn.gateway.code,
        event,
        txn.public_id,
        txn.gateway_reference,
        txn.amount_minor,
        txn.currency,
        sandbox.account_reference(txn.gateway.code, account),
        queue_name="payouts",
    )
    return txn


@job
def deliver_event(
    gateway_code: str,
    event: str,
    transaction_id: str,
    reference: str | None,
    amount_minor: int,
    currency: str,
    account_ref: str | None = None,
) -> int:
    """Sign and POST one sandbox webhook. A 5xx raises so RQ retries (like a real gateway)."""
    secret = gateways_admin.webhook_secret_of(gateway_code)
    body = sandbox.encode_event(
        event, transaction_id, reference, amount_minor, currency, account_ref
    )
    url = f"{current_app.config['PUBLIC_URL']}/api/payment/webhook/{gateway_code}"
    status = sandbox.http_post(
        url,
        body,
        {"Content-Type": "application/json", sandbox.SIGNATURE_HEADER: sandbox.sign(secret, body)},
    )
    log.info("sandbox webhook %s for %s answered %s", event, transaction_id, status)
    if status >= 500:
        raise RuntimeError(f"webhook endpoint answered {status}; will retry")
    return status
