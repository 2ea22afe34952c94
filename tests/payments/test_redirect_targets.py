"""A deposit's return_url / cancel_url is where the payment page sends the player: only a
relative path or an allowed origin, never an open redirect (issue 21)."""

from __future__ import annotations

import pytest

from app.core import redirects
from app.core.db import atomic
from app.core.extensions import db
from app.payments.models import PaymentTransaction

EVIL = [
    "https://evil.example/phish",
    "//evil.example/wallet",
    "/\\evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://localhost:3000@evil.example/",
    "https://user:pw@localhost:3000/",
    "http://localhost:3001/",  # another port is another origin
    "https://localhost:3000/",  # another scheme too
    "/wallet\r\nSet-Cookie: x=1",
    "wallet",  # relative without a leading slash: unclear base
]


def _deposit(client, headers, **urls):
    return client.post(
        "/api/payment/deposit",
        headers=headers,
        json={"amount": "20.00", "currency": "EUR", "method": "sandbox", **urls},
    )


@pytest.mark.parametrize("target", EVIL)
@pytest.mark.parametrize("field", ["return_url", "cancel_url"])
def test_a_deposit_refuses_a_foreign_or_odd_return_url(
    client, factory, token_for, gateway, target, field
):
    response = _deposit(client, token_for(factory.player()), **{field: target})
    assert response.status_code == 400, response.json
    assert [e["field"] for e in response.json["errors"]] == [field]


@pytest.mark.parametrize(
    "target",
    ["/wallet?deposit=ok", "http://localhost:3000/wallet", "http://127.0.0.1:3000/cashier#done"],
)
def test_relative_paths_and_the_front_ends_origins_are_allowed(
    client, factory, token_for, gateway, target
):
    response = _deposit(client, token_for(factory.player()), return_url=target)
    assert response.status_code == 201, response.json


def test_the_allowed_origins_setting_replaces_the_default(app, monkeypatch):
    monkeypatch.setitem(app.config, "REDIRECT_ALLOWED_ORIGINS", ["https://casino.example"])
    assert redirects.is_allowed("https://casino.example/wallet")
    assert redirects.is_allowed("https://CASINO.example:443/wallet")
    assert not redirects.is_allowed("http://localhost:3000/wallet")
    assert not redirects.is_allowed("https://casino.example.evil.net/")
    assert redirects.is_allowed("/wallet")

    from app.core.config import load_config

    cfg = load_config({"REDIRECT_ALLOWED_ORIGINS": "https://a.example, https://b.example:8443"})
    assert cfg["REDIRECT_ALLOWED_ORIGINS"] == ["https://a.example", "https://b.example:8443"]


def test_the_sandbox_page_redirects_only_to_an_allowed_target(
    client, factory, token_for, gateway, wire
):
    headers = token_for(factory.player())
    ok = _deposit(client, headers, return_url="http://localhost:3000/wallet").json["data"]
    paid = client.post(f"/sandbox/checkout/{ok['transaction_id']}/pay")
    assert paid.status_code == 303
    assert paid.headers["Location"] == "http://localhost:3000/wallet"

    # A target stored before the allow-list existed is not followed either.
    old = _deposit(client, headers).json["data"]
    with atomic():
        txn = db.session.query(PaymentTransaction).filter_by(public_id=old["transaction_id"]).one()
        txn.return_url = "https://evil.example/phish"
    response = client.post(f"/sandbox/checkout/{old['transaction_id']}/pay")
    assert response.status_code == 200
    assert "Location" not in response.headers


# --- a gateway's own success_url / cancel_url (staff-set, in its config) ----------------------


@pytest.mark.parametrize("target", [*EVIL[:9], 123, ["https://evil.example"]])
@pytest.mark.parametrize("key", ["success_url", "cancel_url", "return_url"])
def test_staff_cannot_save_a_gateway_redirect_to_a_foreign_origin(
    client, factory, token_for, key, target
):
    from tests.payments.test_gateways import GUIDE_BODY

    headers = token_for(factory.staff("admin"))
    body = {**GUIDE_BODY, "config": {"test_mode": True, key: target}}
    created = client.post("/api/admin/payment-gateways", headers=headers, json=body)
    assert created.status_code == 400, created.json
    assert [e["field"] for e in created.json["errors"]] == [f"config.{key}"]
    listed = client.get("/api/admin/payment-gateways", headers=headers).json["data"]
    assert not [gw for gw in listed if gw["code"] == "stripe"]


def test_a_gateway_redirect_on_an_allowed_origin_is_saved_and_a_bad_update_changes_nothing(
    client, factory, token_for
):
    from tests.payments.test_gateways import GUIDE_BODY

    headers = token_for(factory.staff("admin"))
    good = {"success_url": "http://localhost:3000/wallet?ok=1", "cancel_url": "/wallet"}
    created = client.post(
        "/api/admin/payment-gateways", headers=headers, json={**GUIDE_BODY, "config": good}
    )
    assert created.status_code == 201, created.json
    gateway_id = created.json["data"]["id"]
    bad = client.put(
        f"/api/admin/payment-gateways/{gateway_id}",
        headers=headers,
        json={"config": {**good, "cancel_url": "https://evil.example/"}},
    )
    assert bad.status_code == 400
    assert bad.json["errors"][0]["field"] == "config.cancel_url"
    with atomic():
        from app.payments.models import PaymentGateway

        assert db.session.get(PaymentGateway, gateway_id).config == good


def test_a_stripe_session_never_sends_a_player_to_a_stored_foreign_default(app):
    from app.payments.gateways import GatewayConfig
    from app.payments.gateways.stripe import StripeAdapter

    # A row saved before the check: its foreign default is replaced by the casino's home.
    config = {"success_url": "https://evil.example/", "cancel_url": "/wallet"}
    adapter = StripeAdapter(GatewayConfig("stripe", None, "sk_x", "whsec_x", None, config))
    assert adapter._default("success_url") == "/"
    assert adapter._default("cancel_url") == "/wallet"
