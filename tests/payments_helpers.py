"""Shared builders for the payments/KYC/RG tests."""

from __future__ import annotations

import io
from decimal import Decimal

from PIL import Image

SANDBOX_SECRET = "whsec_sandbox_test_secret"


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(size: tuple[int, int] = (320, 200)) -> bytes:
    buf = io.BytesIO()
    img = Image.effect_noise(size, 64).convert("RGB")
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def pdf_bytes(pages: int = 1) -> bytes:
    """A well-formed PDF of blank A4 pages (pypdf writes it)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def elf_bytes() -> bytes:
    # The start of a real x86-64 ELF executable header followed by padding.
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 512


def sandbox_gateway(**overrides):
    from app.payments import gateways_admin

    data = {
        "code": "sandbox",
        "name": "Sandbox",
        "type": "sandbox",
        "adapter": "sandbox",
        "direction": "both",
        "webhook_secret": SANDBOX_SECRET,
        "supported_currencies": ["EUR", "USD"],
        "min_amount": Decimal("5"),
        "max_amount": Decimal("10000"),
        "fees_percentage": Decimal("2.5"),
        "fees_fixed": Decimal("0.30"),
    }
    data.update(overrides)
    return gateways_admin.create_gateway(data)


def signed_sandbox(body: dict | bytes, secret: str = SANDBOX_SECRET) -> tuple[bytes, dict]:
    """A sandbox webhook body and its headers, signed as the gateway signs them."""
    import json

    from app.payments.gateways import sandbox

    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", "X-Signature": sandbox.sign(secret, raw)}


def sandbox_event(name: str, payment: dict, **overrides) -> dict:
    """The body the sandbox sends for ``payment`` (an API answer: transaction_id, amount...);
    an override of ``...`` leaves that field out."""
    body = {
        "event": name,
        "transaction_id": payment["transaction_id"],
        "gateway_reference": payment.get("order_id"),
        "amount": payment["amount"],
        "currency": payment["currency"],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def start_deposit(client, headers, amount="50.00", currency="EUR") -> dict:
    response = client.post(
        "/api/payment/deposit",
        headers=headers,
        json={"amount": amount, "currency": currency, "method": "sandbox"},
    )
    assert response.status_code == 201, response.json
    return response.json["data"]


def cash_and_held(user_id: int, currency: str = "EUR") -> tuple[int, int]:
    from sqlalchemy import select

    from app.core.extensions import db
    from app.wallet.models import Wallet

    db.session.expire_all()
    wallet = db.session.scalar(
        select(Wallet).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )
    return (0, 0) if wallet is None else (wallet.balance, wallet.held_balance)


def set_opsetting(factory, key: str, value) -> None:
    """Change one operator setting in a test, as an admin would (audited)."""
    from app.core import opsettings
    from app.core.db import atomic

    admin = factory.staff("admin")
    with atomic():
        opsettings.put_many({key: value}, actor=admin, reason="test")


def allow_withdrawal_reversal(factory) -> None:
    """Operators outside the UK may let players cancel a pending withdrawal (default off)."""
    set_opsetting(factory, "withdrawal_reversal_allowed", True)
