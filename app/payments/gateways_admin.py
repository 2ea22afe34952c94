"""Payment gateways as the operator configures them: CRUD, adapters, fees, who they serve.

Invariants: gateway secrets are stored encrypted and never serialized; a gateway serves a
direction, currencies and countries, and amounts within its bounds.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.core import audit, outbound, redirects
from app.core.crypto import decrypt, encrypt
from app.core.db import atomic, lock_one
from app.core.errors import (
    AccessDenied,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationError,
)
from app.core.extensions import db
from app.core.money import exponent, format_minor
from app.identity.models import User
from app.payments.gateways import ADAPTERS, GatewayAdapter, GatewayConfig
from app.payments.gateways.sandbox import SandboxAdapter
from app.payments.models import PaymentGateway, PaymentTransaction

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


def adapter_enabled(adapter: str) -> bool:
    """False for the sandbox adapter where ``SANDBOX_GATEWAY_ENABLED`` is off (production):
    it credits deposits nobody paid, so no deposit, payout, webhook or checkout goes through
    it there (docs/security.md)."""
    return adapter != SandboxAdapter.name or bool(current_app.config["SANDBOX_GATEWAY_ENABLED"])


SANDBOX_DISABLED = "The sandbox payment gateway is disabled in this environment"
#: Keys of a gateway's ``config`` that send the player somewhere after its payment page: held
#: to the deposit's own rule (app.core.redirects), or a gateway is an open redirect.
REDIRECT_CONFIG_KEYS = ("success_url", "cancel_url", "return_url")


def _validate_gateway(gw: PaymentGateway) -> None:
    if gw.adapter not in ADAPTERS:
        raise ValidationError.field("adapter", f"Must be one of: {', '.join(ADAPTERS)}")
    if gw.is_active and not adapter_enabled(gw.adapter):
        raise ValidationError.field("adapter", SANDBOX_DISABLED)
    if gw.direction not in ("deposit", "withdrawal", "both"):
        raise ValidationError.field("direction", "Must be deposit, withdrawal or both")
    if not gw.supported_currencies:
        raise ValidationError.field("supported_currencies", "At least one currency is required")
    if gw.min_amount is not None and gw.max_amount is not None and gw.max_amount < gw.min_amount:
        raise ValidationError.field("max_amount", "Must not be below min_amount")
    if not Decimal(0) <= Decimal(gw.fees_percentage or 0) < Decimal(100):
        raise ValidationError.field("fees_percentage", "Must be between 0 and 100")
    if gw.api_endpoint:
        try:
            outbound.check_url(gw.api_endpoint)
        except outbound.OutboundRefused as exc:
            raise ValidationError.field("api_endpoint", str(exc)) from None
    config = gw.config if isinstance(gw.config, dict) else {}
    for key in REDIRECT_CONFIG_KEYS:
        target = config.get(key)
        if target in (None, ""):
            continue
        if not isinstance(target, str) or not redirects.is_allowed(target):
            raise ValidationError.field(f"config.{key}", redirects.NOT_ALLOWED)


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


def delete_gateway(gateway_id: int, actor: Any = None) -> dict[str, Any]:
    """Delete a gateway that never carried a payment. One with payments keeps them traceable
    (their webhooks, refunds and reports name it): refused with 409, disable it instead."""
    with atomic():
        gw = lock_one(PaymentGateway, PaymentGateway.id == gateway_id)
        if gw is None:
            raise NotFound("Payment gateway not found")
        used = db.session.scalar(
            select(func.count(PaymentTransaction.id)).where(PaymentTransaction.gateway_id == gw.id)
        )
        if used:
            raise Conflict(
                f"Gateway {gw.code!r} has {used} payment(s) and cannot be deleted: disable it "
                "instead (POST .../toggle)"
            )
        before = _public_fields(gw)
        audit.record(
            "gateway.delete",
            actor=actor,
            target_type="payment_gateway",
            target_id=gw.id,
            before=before,
        )
        db.session.delete(gw)
    return {"id": gateway_id, "code": before["code"], "deleted": True}


def all_gateways() -> list[PaymentGateway]:
    return list(db.session.scalars(select(PaymentGateway).order_by(PaymentGateway.id)))


def adapter_for(gw: PaymentGateway) -> GatewayAdapter:
    if not adapter_enabled(gw.adapter):
        raise NotFound(SANDBOX_DISABLED)
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
    return int((Decimal(value).scaleb(exponent(currency))).quantize(Decimal(1), ROUND_HALF_UP))


def fee_for(gw: PaymentGateway, amount_minor: int, currency: str) -> int:
    pct = Decimal(gw.fees_percentage or 0)
    variable = (Decimal(amount_minor) * pct / Decimal(100)).quantize(Decimal(1), ROUND_HALF_UP)
    return int(variable) + (to_minor(gw.fees_fixed or Decimal(0), currency) or 0)


def _serves(gw: PaymentGateway, direction: str, currency: str | None, country: str | None) -> bool:
    if not gw.is_active or gw.adapter not in ADAPTERS:
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
    """Active gateways that fit the player's country and the currency and direction asked
    (a disabled adapter's gateways are not offered)."""
    return [
        g
        for g in all_gateways()
        if _serves(g, direction, currency, user.country) and adapter_enabled(g.adapter)
    ]


def pick_gateway(
    user: User, direction: str, currency: str, gateway_id: int | None, method: str | None
) -> PaymentGateway:
    candidates = [g for g in all_gateways() if _serves(g, direction, currency, user.country)]
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
    if not adapter_enabled(chosen[0].adapter):
        raise AccessDenied(SANDBOX_DISABLED)
    return chosen[0]


def check_amount_bounds(gw: PaymentGateway, amount_minor: int, currency: str) -> None:
    low, high = to_minor(gw.min_amount, currency), to_minor(gw.max_amount, currency)
    if low is not None and amount_minor < low:
        raise ValidationError.field(
            "amount", f"The minimum for {gw.name} is {format_minor(low, currency)} {currency}"
        )
    if high is not None and amount_minor > high:
        raise ValidationError.field(
            "amount", f"The maximum for {gw.name} is {format_minor(high, currency)} {currency}"
        )
