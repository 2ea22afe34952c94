"""Referral statistics: a referrer sees exactly their own referrals and what they did."""

from __future__ import annotations

import pytest

from app.payments.gateways import sandbox
from tests.bonus.test_promotions import deposit_and_pay
from tests.moneykit import open_table
from tests.payments.conftest import Wire
from tests.payments_helpers import sandbox_gateway


@pytest.fixture
def wire(client, monkeypatch):
    w = Wire(client)
    monkeypatch.setattr(sandbox, "http_post", w)
    return w


def test_a_referrer_sees_referrals_qualified_ones_and_their_deposits(
    client, factory, token_for, wire
):
    sandbox_gateway()
    referrer = factory.player()
    friend = factory.player(referred_by_id=referrer.id)
    idle = factory.player(referred_by_id=referrer.id)
    factory.player()  # somebody else's player
    deposit_and_pay(client, wire, token_for(friend), "40.00")
    stats = client.get("/api/affiliate/stats", headers=token_for(referrer)).json["data"]
    assert stats["referral_code"] == referrer.referral_code
    assert stats["referral_link"].endswith(f"ref={referrer.referral_code}")
    assert (stats["referrals"], stats["qualified_referrals"]) == (2, 1)
    assert stats["deposits"] == [{"currency": "EUR", "amount": "40.00"}]
    assert stats["commissions"] == []
    page = client.get("/api/affiliate/referrals", headers=token_for(referrer)).json
    assert page["meta"]["total"] == 2
    rows = {r["id"]: r for r in page["data"]}
    assert rows[friend.id]["qualified"] is True
    assert rows[idle.id]["qualified"] is False
    assert "email" not in rows[friend.id]
    # The referred friend has no referrals of their own.
    theirs = client.get("/api/affiliate/stats", headers=token_for(friend)).json["data"]
    assert theirs["referrals"] == 0


def test_an_agent_sees_the_players_attached_to_them_and_their_play(client, factory, token_for):
    agent = factory.staff("agent")
    table = open_table(client, factory, cash=50_00)
    from app.core.db import atomic
    from app.core.extensions import db
    from app.identity.models import User

    with atomic():
        db.session.get(User, table.user_id).agent_id = agent.id
    table.bet("b1", "10.00")
    table.win("w1", "4.00")
    stats = client.get("/api/affiliate/stats", headers=token_for(agent)).json["data"]
    assert stats["is_agent"] is True
    assert stats["referrals"] == 1
    assert stats["wagered"] == [{"currency": "EUR", "amount": "10.00"}]
    assert stats["ggr"] == [{"currency": "EUR", "amount": "6.00"}]
    rows = client.get("/api/affiliate/referrals", headers=token_for(agent)).json["data"]
    assert rows[0]["via"] == "agent"
    manager = token_for(factory.staff("manager"))
    assert client.get("/api/affiliate/stats", headers=manager).status_code == 403
