"""Gateways: staff configuration, encrypted secrets, the Stripe signature scheme, the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.payments.gateways.base import WebhookRejected
from app.payments.gateways.stripe import compute_signature, verify_signature
from app.payments.models import PaymentGateway
from tests.payments_helpers import SANDBOX_SECRET, sandbox_gateway

GUIDE_BODY = {
    "name": "Stripe",
    "code": "stripe",
    "type": "card",
    "description": "Credit/Debit card payments",
    "api_key": "pk_test_123",
    "api_secret": "sk_test_456",
    "api_endpoint": "https://api.stripe.com",
    "webhook_url": "https://backend.jackpotx.net/webhooks/stripe",
    "webhook_secret": "whsec_789",
    "supported_currencies": ["USD", "EUR", "GBP"],
    "supported_countries": ["US", "CA", "GB"],
    "min_amount": 5.00,
    "max_amount": 10000.00,
    "processing_time": "instant",
    "fees_percentage": 2.9,
    "fees_fixed": 0.30,
    "auto_approval": True,
    "requires_kyc": False,
    "is_active": True,
    "config": {"test_mode": True},
}


def test_admin_creates_a_gateway_and_secrets_are_encrypted_and_never_returned(
    client, factory, token_for
):
    admin = factory.staff("admin")
    response = client.post("/api/admin/payment-gateways", headers=token_for(admin), json=GUIDE_BODY)
    assert response.status_code == 201, response.json
    data = response.json["data"]
    assert data["code"] == "stripe"
    assert data["adapter"] == "stripe"
    assert data["has_webhook_secret"]
    assert data["has_api_secret"]
    text = json.dumps(response.json)
    for secret in ("sk_test_456", "whsec_789", "pk_test_123"):
        assert secret not in text
    row = db.session.scalar(select(PaymentGateway).where(PaymentGateway.code == "stripe"))
    assert row.webhook_secret_enc
    assert "whsec_789" not in row.webhook_secret_enc
    listed = client.get("/api/admin/payment-gateways", headers=token_for(admin))
    assert "whsec_789" not in listed.get_data(as_text=True)
    assert listed.json["data"][0]["fees_percentage"] == "2.9"


def test_gateway_management_needs_settings_permission(client, factory, token_for):
    manager = factory.staff("manager")
    player = factory.player()
    for user in (manager, player):
        assert client.get("/api/admin/payment-gateways", headers=token_for(user)).status_code == 403
        assert (
            client.post(
                "/api/admin/payment-gateways", headers=token_for(user), json=GUIDE_BODY
            ).status_code
            == 403
        )


def test_update_and_toggle_a_gateway(client, factory, token_for):
    admin = factory.staff("admin")
    gw = sandbox_gateway()
    headers = token_for(admin)
    updated = client.put(
        f"/api/admin/payment-gateways/{gw.id}",
        headers=headers,
        json={"max_amount": "500.00", "requires_kyc": True, "code": "renamed"},
    )
    assert updated.status_code == 200, updated.json
    assert updated.json["data"]["max_amount"] == "500"
    assert updated.json["data"]["code"] == "sandbox"
    bad = client.put(
        f"/api/admin/payment-gateways/{gw.id}", headers=headers, json={"min_amount": "900"}
    )
    assert bad.status_code == 400
    toggled = client.post(f"/api/admin/payment-gateways/{gw.id}/toggle", headers=headers)
    assert toggled.json["data"]["is_active"] is False


def test_player_sees_only_gateways_for_their_currency_and_country(client, factory, token_for):
    sandbox_gateway()
    sandbox_gateway(code="uk-card", name="UK card", type="card", supported_countries=["GB"])
    sandbox_gateway(code="usd-only", name="USD", supported_currencies=["USD"])
    off = sandbox_gateway(code="off", name="Off")
    from app.payments import gateways_admin

    gateways_admin.toggle_gateway(off.id)
    player = factory.player(country="MT")
    response = client.get(
        "/api/payment/gateways?type=deposit&currency=EUR", headers=token_for(player)
    )
    codes = {g["code"] for g in response.json["data"]}
    assert codes == {"sandbox"}
    methods = client.get("/api/payment/methods", headers=token_for(player)).json["data"]
    assert {m["type"] for m in methods} == {"sandbox"}
    assert "webhook_secret" not in json.dumps(methods)


def test_stripe_signature_is_verified_with_the_documented_scheme():
    secret = "whsec_test_abc"
    body = b'{"id":"evt_1","type":"checkout.session.completed"}'
    now = 1_700_000_000
    header = f"t={now},v1={compute_signature(secret, now, body)},v0=deadbeef"
    # The scheme itself, computed independently: HMAC-SHA256 of "<t>.<body>".
    manual = hmac.new(secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    assert compute_signature(secret, now, body) == manual
    assert verify_signature(secret, body, header, now=now + 10) == now


def test_stripe_signature_accepts_any_v1_during_secret_rotation():
    body = b"{}"
    now = int(time.time())
    header = f"t={now},v1={'0' * 64},v1={compute_signature('whsec_new', now, body)}"
    assert verify_signature("whsec_new", body, header) == now


@pytest.mark.parametrize(
    ("header_for", "why"),
    [
        (lambda s, t, b: None, "missing"),
        (lambda s, t, b: f"t={t}", "no v1"),
        (lambda s, t, b: f"t={t},v1={compute_signature('whsec_other', t, b)}", "other secret"),
        (lambda s, t, b: f"t={t},v1={compute_signature(s, t, b + b' ')}", "body changed"),
        (lambda s, t, b: f"t={t - 301},v1={compute_signature(s, t - 301, b)}", "too old"),
        (lambda s, t, b: f"t=abc,v1={compute_signature(s, t, b)}", "bad timestamp"),
    ],
)
def test_stripe_signature_refusals(header_for, why):
    secret, body, now = "whsec_test_abc", b'{"a":1}', int(time.time())
    with pytest.raises(WebhookRejected):
        verify_signature(secret, body, header_for(secret, now, body), now=now)


def test_stripe_webhook_is_refused_over_http_when_unsigned(client, factory, token_for):
    from app.payments import gateways_admin

    gateways_admin.create_gateway({**GUIDE_BODY, "min_amount": None, "max_amount": None})
    body = json.dumps({"type": "checkout.session.completed", "data": {"object": {}}}).encode()
    response = client.post(
        "/api/payment/webhook/stripe",
        data=body,
        headers={"Stripe-Signature": f"t={int(time.time())},v1={'a' * 64}"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json["code"] == "INVALID_SIGNATURE"


def test_stripe_checkout_completed_maps_to_our_event():
    from app.payments.gateways.base import GatewayConfig
    from app.payments.gateways.stripe import StripeAdapter

    adapter = StripeAdapter(GatewayConfig("stripe", None, None, "whsec_x", None, {}))
    body = json.dumps(
        {
            "id": "evt_1",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": "cs_test_1",
                    "payment_status": "paid",
                    "amount_total": 5000,
                    "currency": "eur",
                    "metadata": {"transaction_id": "txn_abc"},
                }
            },
        }
    ).encode()
    event = adapter.parse_webhook(body, {})
    assert (event.event, event.transaction_id, event.amount_minor, event.currency) == (
        "payment.succeeded",
        "txn_abc",
        5000,
        "EUR",
    )
    unpaid = json.loads(body)
    unpaid["data"]["object"]["payment_status"] = "unpaid"
    assert adapter.parse_webhook(json.dumps(unpaid).encode(), {}) is None


def test_cli_gateways_add_registers_a_gateway(runner):
    result = runner.invoke(
        args=[
            "jackpotx",
            "gateways",
            "add",
            "--code",
            "sandbox",
            "--name",
            "Sandbox",
            "--type",
            "sandbox",
            "--secret",
            SANDBOX_SECRET,
            "--currencies",
            "EUR,USD",
            "--min-amount",
            "5",
        ]
    )
    assert result.exit_code == 0, result.output
    gw = db.session.get(PaymentGateway, int(result.output.strip()))
    assert gw.supported_currencies == ["EUR", "USD"]
    from app.payments import gateways_admin

    assert gateways_admin.webhook_secret_of("sandbox") == SANDBOX_SECRET
    again = runner.invoke(
        args=[
            "jackpotx",
            "gateways",
            "add",
            "--code",
            "sandbox",
            "--name",
            "S",
            "--type",
            "x",
            "--secret",
            "s",
        ]
    )
    assert again.exit_code == 1


def test_a_gateway_without_payments_is_deleted_and_one_with_payments_is_refused(
    client, factory, token_for
):
    from tests.payments.test_payments import start_deposit

    admin = token_for(factory.staff("admin"))
    created = client.post("/api/admin/payment-gateways", headers=admin, json=GUIDE_BODY).json
    unused = created["data"]["id"]
    gone = client.delete(f"/api/admin/payment-gateways/{unused}", headers=admin)
    assert gone.status_code == 200, gone.json
    assert gone.json["data"] == {"id": unused, "code": "stripe", "deleted": True}
    assert db.session.get(PaymentGateway, unused) is None
    assert client.delete(f"/api/admin/payment-gateways/{unused}", headers=admin).status_code == 404

    used = sandbox_gateway()
    start_deposit(client, token_for(factory.player()))
    refused = client.delete(f"/api/admin/payment-gateways/{used.id}", headers=admin)
    assert refused.status_code == 409
    assert "disable it instead" in refused.json["message"]
    assert db.session.get(PaymentGateway, used.id) is not None
    manager = token_for(factory.staff("manager"))
    assert (
        client.delete(f"/api/admin/payment-gateways/{used.id}", headers=manager).status_code == 403
    )
    from app.core.models import AuditLog

    actions = db.session.scalars(
        select(AuditLog.action).where(AuditLog.target_type == "payment_gateway")
    ).all()
    assert "gateway.delete" in actions
