"""Stripe adapter: Checkout Sessions for deposits, signed webhooks.

Webhook authenticity follows Stripe's documented scheme: header
``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...][,v0=...]``; the expected signature is
hex HMAC-SHA256 of ``"<t>.<raw body>"`` with the endpoint's signing secret (``whsec_...``); any
``v1`` may match (secret rotation); ``t`` must be within the tolerance (300 s) of now, which
stops replays of old captured requests. Stripe amounts are in the currency's smallest unit,
which is our minor unit for every currency we accept.

Payouts to players are not a Stripe Checkout feature, so this adapter does not offer them.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from app.core import jsonsafe, outbound, redirects
from app.payments.gateways.base import (
    DepositSession,
    GatewayAdapter,
    PaymentRequest,
    WebhookEvent,
    WebhookMalformed,
    WebhookRejected,
)

SIGNATURE_HEADER = "Stripe-Signature"
DEFAULT_TOLERANCE = 300
API_BASE = "https://api.stripe.com"


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Return the signed timestamp, or raise ``WebhookRejected``."""
    if not secret:
        raise WebhookRejected("gateway has no webhook secret configured")
    if not header:
        raise WebhookRejected("Stripe-Signature header missing")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookRejected("malformed timestamp") from None
        elif key == "v1" and value:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        raise WebhookRejected("no timestamp or v1 signature in header")
    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise WebhookRejected("no signature matches")
    current = time.time() if now is None else now
    if tolerance > 0 and abs(current - timestamp) > tolerance:
        raise WebhookRejected("timestamp outside the tolerance")
    return timestamp


class StripeAdapter(GatewayAdapter):
    name = "stripe"
    supports_payouts = False

    def _default(self, key: str) -> str:
        """The gateway's own ``success_url``/``cancel_url`` (staff-set, allow-listed when
        saved); a row saved before that check with another origin sends the player home."""
        target = str((self.config.config or {}).get(key) or "")
        if target and not redirects.is_allowed(target):
            return "/"
        return target

    def create_deposit(self, request: PaymentRequest) -> DepositSession:
        if not self.config.api_secret:
            raise RuntimeError("Stripe gateway has no API secret configured")
        form = {
            "mode": "payment",
            "client_reference_id": request.transaction_id,
            "metadata[transaction_id]": request.transaction_id,
            "payment_intent_data[metadata][transaction_id]": request.transaction_id,
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(request.amount_minor),
            "line_items[0][price_data][product_data][name]": request.description
            or "Account deposit",
            # Allow-listed at the deposit (app.core.redirects); Stripe wants absolute URLs.
            "success_url": redirects.absolute(request.return_url or self._default("success_url")),
            "cancel_url": redirects.absolute(request.cancel_url or self._default("cancel_url")),
        }
        # Through the outbound guard (issue 21): the endpoint is staff-set, the secret goes
        # with it; every failure is one OutboundError (no port oracle).
        response = outbound.post(
            f"{(self.config.api_endpoint or API_BASE).rstrip('/')}/v1/checkout/sessions",
            data=form,
            headers={
                "Authorization": f"Bearer {self.config.api_secret}",
                "Idempotency-Key": f"deposit-{request.transaction_id}",
            },
            timeout=15,
            raise_for_status=True,
        )
        session = response.json()
        return DepositSession(
            payment_url=session["url"], gateway_reference=session["id"], raw={"id": session["id"]}
        )

    def verify_webhook(self, body: bytes, headers: dict[str, str]) -> None:
        tolerance = int(self.config.config.get("tolerance", DEFAULT_TOLERANCE))
        verify_signature(
            self.config.webhook_secret or "",
            body,
            headers.get(SIGNATURE_HEADER),
            tolerance=tolerance,
        )

    def parse_webhook(self, body: bytes, headers: dict[str, str]) -> WebhookEvent | None:
        try:
            # Nesting bounded, a key given twice refused (the signer and we could read
            # different values), numbers as the gateway sent them.
            payload = jsonsafe.loads(body, unique_keys=True, exact_numbers=False)
        except jsonsafe.JSONRejected as exc:
            raise WebhookMalformed("body", str(exc)) from None
        if not isinstance(payload, dict):
            raise WebhookMalformed("body", "The body must be a JSON object")
        kind = payload.get("type")
        if not isinstance(kind, str) or not kind:
            raise WebhookMalformed("type", "A non-empty string is required")
        data = payload.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            raise WebhookMalformed("data.object", "An object is required")
        if kind == "checkout.session.completed":
            if obj.get("payment_status") != "paid":
                return None  # async methods confirm later with async_payment_succeeded
            event = "payment.succeeded"
        elif kind == "checkout.session.async_payment_succeeded":
            event = "payment.succeeded"
        elif kind in ("checkout.session.async_payment_failed", "checkout.session.expired"):
            event = "payment.failed"
        else:
            return None
        metadata = obj.get("metadata")
        txn = (metadata.get("transaction_id") if isinstance(metadata, dict) else None) or obj.get(
            "client_reference_id"
        )
        if not isinstance(txn, str) or not txn.strip():
            raise WebhookMalformed(
                "data.object.metadata.transaction_id", "Our transaction id is required"
            )
        # A success is credited only for an amount we compared with ours.
        paid = event == "payment.succeeded"
        amount = obj.get("amount_total")
        if (paid or amount is not None) and (
            not isinstance(amount, int) or isinstance(amount, bool) or amount < 0
        ):
            raise WebhookMalformed(
                "data.object.amount_total", "A non-negative integer (minor units) is required"
            )
        currency = obj.get("currency")
        if (paid or currency is not None) and (not isinstance(currency, str) or not currency):
            raise WebhookMalformed("data.object.currency", "A currency code is required")
        reference = obj.get("id")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 255):
            raise WebhookMalformed("data.object.id", "Must be a string (255 at most)")
        return WebhookEvent(
            event=event,
            transaction_id=txn,
            gateway_reference=reference,
            amount_minor=amount,
            currency=currency.upper() if currency else None,
            raw={"id": payload.get("id"), "type": kind},
        )
