"""The sandbox gateway: a complete local payment provider for development, demos and tests.

It behaves like a remote gateway: a hosted checkout page (``/sandbox/checkout/<id>``) where the
player presses Pay or Decline, after which the sandbox *delivers a signed webhook over HTTP* to
``/api/payment/webhook/<code>`` — the same path, signature check and service a real gateway goes
through. Payouts are simulated the same way: accepted at once, then a ``payout.succeeded`` (or
``payout.failed`` when the payout details carry ``"simulate": "failure"``) webhook follows.

Signature: ``X-Signature`` = hex HMAC-SHA256 of the raw body with the gateway's webhook secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from typing import Any

import requests
from flask import current_app

from app.core import jsonsafe
from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor
from app.core.queues import enqueue_after_commit
from app.payments.gateways.base import (
    EVENTS,
    DepositSession,
    GatewayAdapter,
    PaymentRequest,
    PayoutSubmission,
    WebhookEvent,
    WebhookMalformed,
    WebhookRejected,
)

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode_event(
    event: str,
    transaction_id: str,
    reference: str | None,
    amount_minor: int,
    currency: str,
    account_reference: str | None = None,
) -> bytes:
    body = {
        "event": event,
        "transaction_id": transaction_id,
        "gateway_reference": reference,
        "amount": format_minor(amount_minor, currency),
        "currency": currency,
    }
    if account_reference:
        body["account_reference"] = account_reference
    return json.dumps(body, separators=(",", ":")).encode()


def account_reference(gateway_code: str, account: str | None) -> str | None:
    """The sandbox's stable reference of the 'card or account' typed on its checkout page
    (like a real gateway's card fingerprint: the same number always gives the same value,
    and the number itself is never sent)."""
    digits = "".join(ch for ch in (account or "") if ch.isalnum()).upper()
    if not digits:
        return None
    return "sbx_acct_" + hashlib.sha256(f"{gateway_code}:{digits}".encode()).hexdigest()[:32]


class SandboxAdapter(GatewayAdapter):
    name = "sandbox"
    supports_payouts = True

    def create_deposit(self, request: PaymentRequest) -> DepositSession:
        base = current_app.config["PUBLIC_URL"]
        return DepositSession(
            payment_url=f"{base}/sandbox/checkout/{request.transaction_id}",
            gateway_reference=f"sbx_{secrets.token_hex(12)}",
        )

    def create_payout(self, request: PaymentRequest) -> PayoutSubmission:
        reference = f"sbx_po_{secrets.token_hex(12)}"
        fail = (request.details or {}).get("simulate") == "failure"
        # By name: the sending side (app.payments.sandbox_checkout) reads the webhook secret.
        enqueue_after_commit(
            "app.payments.sandbox_checkout.deliver_event",
            self.config.code,
            "payout.failed" if fail else "payout.succeeded",
            request.transaction_id,
            reference,
            request.amount_minor,
            request.currency,
            queue_name="payouts",
        )
        return PayoutSubmission(gateway_reference=reference, raw={"simulated": True})

    def verify_webhook(self, body: bytes, headers: dict[str, str]) -> None:
        secret = self.config.webhook_secret
        if not secret:
            raise WebhookRejected("gateway has no webhook secret configured")
        given = headers.get(SIGNATURE_HEADER, "")
        if not given or not hmac.compare_digest(sign(secret, body), given.strip().lower()):
            raise WebhookRejected("invalid signature")

    def parse_webhook(self, body: bytes, headers: dict[str, str]) -> WebhookEvent | None:
        try:
            # Nesting bounded, a key given twice refused (the signer and we could read
            # different values), numbers as the gateway sent them.
            data = jsonsafe.loads(body, unique_keys=True, exact_numbers=False)
        except jsonsafe.JSONRejected as exc:
            raise WebhookMalformed("body", str(exc)) from None
        if not isinstance(data, dict):
            raise WebhookMalformed("body", "The body must be a JSON object")
        event = data.get("event")
        if event not in EVENTS:
            raise WebhookMalformed("event", f"Must be one of {', '.join(EVENTS)}")
        txn = data.get("transaction_id")
        if not isinstance(txn, str) or not txn.strip():
            raise WebhookMalformed("transaction_id", "A non-empty string is required")
        try:
            currency = normalize_currency(data.get("currency"))
        except MoneyError as exc:
            raise WebhookMalformed("currency", str(exc)) from None
        try:
            amount = parse_minor(data.get("amount"), currency)
        except MoneyError as exc:
            raise WebhookMalformed("amount", str(exc)) from None
        reference = data.get("gateway_reference")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 255):
            raise WebhookMalformed("gateway_reference", "Must be a string (255 at most) or null")
        return WebhookEvent(
            event=event,
            transaction_id=txn,
            gateway_reference=reference,
            amount_minor=amount,
            currency=currency,
            raw=data,
            instrument=_instrument(data.get("account_reference")),
        )


def _instrument(value: Any) -> str | None:
    return value[:128] if isinstance(value, str) and value.strip() else None


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """The wire: a plain HTTP POST, as a remote gateway would make it."""
    response = requests.post(url, data=body, headers=headers, timeout=10)
    return response.status_code


def checkout_summary(txn: Any) -> dict[str, Any]:
    return {
        "transaction_id": txn.public_id,
        "amount": format_minor(txn.amount_minor, txn.currency),
        "currency": txn.currency,
        "description": txn.description or "Account deposit",
        "status": txn.status,
    }
