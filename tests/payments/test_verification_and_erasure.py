"""Payments meet issue 17: an unverified e-mail blocks a withdrawal (operator default), and an
open withdrawal blocks a GDPR erasure request."""

from __future__ import annotations

import pytest

from app.core.errors import Conflict
from app.payments import withdrawals
from tests.moneykit import fund


def _withdraw(client, headers, amount="20.00"):
    body = {"amount": amount, "method": "sandbox", "currency": "EUR"}
    return client.post("/api/withdrawals/request", headers=headers, json=body)


def test_an_unverified_player_cannot_withdraw(client, factory, token_for, gateway):
    player = factory.player(email_verified_at=None)
    fund(player.id, 50_00)
    answer = _withdraw(client, token_for(player))
    assert answer.status_code == 403
    assert answer.json["code"] == "EMAIL_NOT_VERIFIED"


def test_an_open_withdrawal_refuses_erasure(client, factory, token_for, gateway):
    player = factory.player()
    fund(player.id, 20_00)
    assert _withdraw(client, token_for(player)).status_code == 201
    with pytest.raises(Conflict) as refused:
        withdrawals.check_erasable(player.id)
    assert refused.value.extra["reason"] == "pending_withdrawal"
    answer = client.post("/api/user/erasure-request", json={}, headers=token_for(player))
    assert answer.status_code == 409
