"""The sandbox gateway credits deposits nobody paid: production refuses it at start, and
wherever it is disabled no deposit, checkout page or webhook goes through it (issue 21)."""

from __future__ import annotations

import pytest

from app.core.config import SANDBOX_IN_PRODUCTION_ACK, ConfigError, load_config
from tests.payments_helpers import sandbox_event, signed_sandbox, start_deposit
from tests.prodenv import PRODUCTION_ENV

PRODUCTION = PRODUCTION_ENV


def test_production_refuses_to_start_with_the_sandbox_gateway_enabled():
    with pytest.raises(ConfigError, match="SANDBOX_GATEWAY_ENABLED must be off"):
        load_config({**PRODUCTION, "SANDBOX_GATEWAY_ENABLED": "1"})
    with pytest.raises(ConfigError, match="SANDBOX_GATEWAY_ENABLED must be off"):
        load_config(
            {**PRODUCTION, "SANDBOX_GATEWAY_ENABLED": "1", "SANDBOX_GATEWAY_IN_PRODUCTION": "yes"}
        )
    assert load_config(PRODUCTION)["SANDBOX_GATEWAY_ENABLED"] is False
    # A production-profile environment without real players (fault tests) says so in words.
    acknowledged = load_config(
        {
            **PRODUCTION,
            "SANDBOX_GATEWAY_ENABLED": "1",
            "SANDBOX_GATEWAY_IN_PRODUCTION": SANDBOX_IN_PRODUCTION_ACK,
        }
    )
    assert acknowledged["SANDBOX_GATEWAY_ENABLED"] is True
    assert load_config({})["SANDBOX_GATEWAY_ENABLED"] is True  # development keeps it


@pytest.fixture
def sandbox_off(app, monkeypatch):
    monkeypatch.setitem(app.config, "SANDBOX_GATEWAY_ENABLED", False)


def test_a_disabled_sandbox_takes_no_deposit_and_its_pages_are_gone(
    app, client, factory, token_for, gateway, wire, monkeypatch
):
    headers = token_for(factory.player())
    pending = start_deposit(client, headers)  # opened while it was still on
    monkeypatch.setitem(app.config, "SANDBOX_GATEWAY_ENABLED", False)

    deposit = client.post(
        "/api/payment/deposit",
        headers=headers,
        json={"amount": "50.00", "currency": "EUR", "method": "sandbox"},
    )
    assert deposit.status_code == 403
    assert deposit.json["code"] == "ACCESS_DENIED"
    assert deposit.json["success"] is False

    listed = client.get("/api/payment/methods", headers=headers)
    assert listed.status_code == 200
    assert "sandbox" not in str(listed.json)

    page = client.get(f"/sandbox/checkout/{pending['transaction_id']}")
    assert page.status_code == 404
    assert page.json["code"] == "NOT_FOUND"
    pay = client.post(f"/sandbox/checkout/{pending['transaction_id']}/pay")
    assert pay.status_code == 404
    assert pay.json["success"] is False
    assert wire.outbox == []

    raw, signed = signed_sandbox(sandbox_event("payment.succeeded", pending))
    webhook = client.post("/api/payment/webhook/sandbox", data=raw, headers=signed)
    assert webhook.status_code == 404


def test_staff_cannot_activate_a_sandbox_gateway_where_it_is_disabled(sandbox_off):
    from app.core.errors import ValidationError
    from tests.payments_helpers import sandbox_gateway

    with pytest.raises(ValidationError, match="sandbox payment gateway is disabled"):
        sandbox_gateway(code="sandbox2")
