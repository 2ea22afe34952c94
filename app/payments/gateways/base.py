"""The seam every payment gateway adapter implements.

An adapter is a file in this package and a registry entry (``ADAPTERS``). It never touches the
database or the wallet: the payments service hands it plain values, and it answers with plain
values (what to redirect the player to, the gateway's reference, a verified and parsed webhook).
Secrets come decrypted from the gateway row through :class:`GatewayConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


class WebhookRejected(Exception):
    """The webhook is not authentic; answer 400 ``INVALID_SIGNATURE`` and change nothing."""


class WebhookMalformed(Exception):
    """An authentic webhook whose body lacks a field we need or has it in the wrong type;
    answer 400 ``VALIDATION_ERROR`` naming ``field`` (a dotted path in the body) and change
    nothing. Raised by ``parse_webhook`` only, after the signature was verified."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class GatewayConfig:
    code: str
    api_key: str | None
    api_secret: str | None
    webhook_secret: str | None
    api_endpoint: str | None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentRequest:
    """What we ask a gateway to collect (deposit) or pay out (withdrawal)."""

    transaction_id: str  # our public id, echoed back in every webhook
    amount_minor: int
    currency: str
    user_id: int
    description: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    details: dict[str, Any] | None = None  # payout destination


@dataclass(frozen=True)
class DepositSession:
    payment_url: str
    gateway_reference: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PayoutSubmission:
    gateway_reference: str
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook in our terms."""

    event: str  # payment.succeeded | payment.failed | payout.succeeded | payout.failed
    transaction_id: str
    gateway_reference: str | None
    amount_minor: int | None
    currency: str | None
    raw: dict[str, Any] = field(default_factory=dict)
    #: The gateway's stable reference of the paying card/account, when it gives one.
    instrument: str | None = None


EVENTS = ("payment.succeeded", "payment.failed", "payout.succeeded", "payout.failed")


class GatewayAdapter:
    """Create deposit, create payout, verify webhook, parse webhook."""

    name: ClassVar[str] = "base"
    supports_payouts: ClassVar[bool] = False

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    def create_deposit(self, request: PaymentRequest) -> DepositSession:
        raise NotImplementedError

    def create_payout(self, request: PaymentRequest) -> PayoutSubmission:
        raise NotImplementedError

    def verify_webhook(self, body: bytes, headers: dict[str, str]) -> None:
        """Raise :class:`WebhookRejected` unless ``body`` is authentically from the gateway."""
        raise NotImplementedError

    def parse_webhook(self, body: bytes, headers: dict[str, str]) -> WebhookEvent | None:
        """Our event for a verified body; ``None`` for events we acknowledge but ignore.
        Raise :class:`WebhookMalformed` when a field we need is missing or mistyped."""
        raise NotImplementedError
