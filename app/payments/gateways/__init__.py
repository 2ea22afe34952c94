"""Payment gateway adapters. Adding a gateway = one adapter file + one line in ``ADAPTERS``.

See ``base.GatewayAdapter`` for the interface: create deposit, create payout, verify webhook,
parse webhook.
"""

from __future__ import annotations

from app.payments.gateways.base import (
    GatewayAdapter,
    GatewayConfig,
    WebhookMalformed,
    WebhookRejected,
)
from app.payments.gateways.sandbox import SandboxAdapter
from app.payments.gateways.stripe import StripeAdapter

ADAPTERS: dict[str, type[GatewayAdapter]] = {
    SandboxAdapter.name: SandboxAdapter,
    StripeAdapter.name: StripeAdapter,
}

__all__ = ["ADAPTERS", "GatewayAdapter", "GatewayConfig", "WebhookMalformed", "WebhookRejected"]
