"""A referring player earns the referral reward (loyalty points) once, when the player they
referred makes a first completed deposit of at least the minimum; Agents earn their CPA with
the commission statement instead."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.affiliates import referral_rewards
from app.bonus import loyalty
from app.bonus.models import LoyaltyAccount, LoyaltyEvent
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog, Notification
from app.identity.models import User
from app.payments.gateways import sandbox
from app.payments.models import PaymentTransaction
from tests.payments.conftest import Wire
from tests.payments.test_payments import pay, start_deposit
from tests.payments_helpers import sandbox_gateway


@pytest.fixture
def wire(client, monkeypatch):
    w = Wire(client)
    monkeypatch.setattr(sandbox, "http_post", w)
    return w


@pytest.fixture(autouse=True)
def setup(app):
    sandbox_gateway()
    with atomic():
        loyalty.ensure_levels()


def referred_pair(factory, *, referrer=None):
    referrer = referrer or factory.player()
    player = factory.player()
    with atomic():
        db.session.get(User, player.id).referred_by_id = referrer.id
    return referrer, player


def deposit(client, wire, headers, amount):
    data = start_deposit(client, headers, amount)
    assert pay(client, data).status_code == 200
    (answer,) = wire.flush()
    assert answer.status_code == 200, answer.json
    return data


def points_of(user_id):
    db.session.expire_all()
    account = db.session.get(LoyaltyAccount, user_id)
    return 0 if account is None else account.points


def referral_events(user_id):
    return db.session.scalars(
        select(LoyaltyEvent).where(LoyaltyEvent.user_id == user_id, LoyaltyEvent.kind == "referral")
    ).all()


def test_a_qualifying_first_deposit_earns_the_referrer_points_once(
    app, client, factory, token_for, wire
):
    referrer, player = referred_pair(factory)
    headers = token_for(player)
    first = deposit(client, wire, headers, "25.00")
    assert points_of(referrer.id) == 500
    (event,) = referral_events(referrer.id)
    assert event.reference == f"referral:{player.id}"
    assert event.amount == 25_00
    # The hook run again for that deposit, and a second deposit: nothing more.
    with atomic():
        txn = db.session.scalar(
            select(PaymentTransaction).where(
                PaymentTransaction.public_id == first["transaction_id"]
            )
        )
        referral_rewards.on_deposit_completed(txn)
    deposit(client, wire, headers, "50.00")
    assert points_of(referrer.id) == 500
    assert len(referral_events(referrer.id)) == 1
    assert (
        db.session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action == "referral.reward")
        )
        == 1
    )
    assert (
        db.session.scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == referrer.id, Notification.type == "referral"
            )
        )
        == 1
    )
    # The points are spendable in the redemption catalogue.
    assert (
        client.get("/api/loyalty/redemptions", headers=token_for(referrer)).json["data"]["points"]
        == 500
    )


def test_a_small_first_deposit_does_not_qualify_and_a_later_one_does_not_either(
    client, factory, token_for, wire
):
    referrer, player = referred_pair(factory)
    headers = token_for(player)
    deposit(client, wire, headers, "5.00")
    deposit(client, wire, headers, "100.00")
    assert points_of(referrer.id) == 0
    assert referral_events(referrer.id) == []


def test_the_operator_sets_the_reward_and_the_minimum(app, client, factory, token_for, wire):
    saved = {k: app.config[k] for k in ("REFERRAL_REWARD_POINTS", "REFERRAL_MIN_DEPOSIT")}
    app.config.update(REFERRAL_REWARD_POINTS=1_200, REFERRAL_MIN_DEPOSIT="30.00")
    try:
        referrer, player = referred_pair(factory)
        deposit(client, wire, token_for(player), "30.00")
        assert points_of(referrer.id) == 1_200
        db.session.expire_all()
        assert db.session.get(LoyaltyAccount, referrer.id).level_code == "silver"
    finally:
        app.config.update(saved)


def test_an_agents_referral_earns_the_cpa_not_points(client, factory, token_for, wire):
    agent = factory.staff("agent")
    _, player = referred_pair(factory, referrer=agent)
    deposit(client, wire, token_for(player), "50.00")
    assert points_of(agent.id) == 0


def test_a_self_excluded_referrer_earns_nothing(client, factory, token_for, wire):
    referrer, player = referred_pair(factory)
    excluded = client.post(
        "/api/responsible-gaming/self-exclude",
        headers=token_for(referrer),
        json={"duration": "6_months"},
    )
    assert excluded.status_code in (200, 201), excluded.json
    deposit(client, wire, token_for(player), "50.00")
    assert points_of(referrer.id) == 0
    assert (
        db.session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action == "referral.reward_skipped")
        )
        == 1
    )


def test_awarding_twice_by_hand_adds_nothing(app, factory):
    referrer, player = referred_pair(factory)
    ref = referral_rewards.reference_for(player.id)
    with atomic():
        first = loyalty.award(referrer.id, 500, kind="referral", reference=ref,
                              currency="EUR", amount=10_00)  # fmt: skip
        second = loyalty.award(referrer.id, 500, kind="referral", reference=ref,
                               currency="EUR", amount=10_00)  # fmt: skip
    assert first is not None
    assert second is None
    assert points_of(referrer.id) == 500
