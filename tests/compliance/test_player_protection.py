"""Player protection the regulators test (UKGC RTS 12A/13, PA 814a): the deposit-limit prompt
before a first deposit, lifting a self-exclusion only after its minimum period plus a
cooling-off and a confirmation, and no reverse withdrawals."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.compliance import responsible_gaming as rg
from app.compliance.models import RgExclusion, RgLimit
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from app.wallet.models import Wallet
from tests.moneykit import fund
from tests.payments_helpers import sandbox_gateway, set_opsetting

PROMPT = "/api/responsible-gaming/deposit-limit-prompt"
LIFT_REQUEST = "/api/responsible-gaming/self-exclusion/lift-request"
LIFT_CONFIRM = "/api/responsible-gaming/self-exclusion/lift-confirm"


@pytest.fixture
def gateway(app):
    return sandbox_gateway()


@pytest.fixture
def prompt_required(factory):
    set_opsetting(factory, "deposit_limit_prompt_required", True)


def deposit(client, headers, amount="20.00"):
    return client.post(
        "/api/payment/deposit",
        headers=headers,
        json={"amount": amount, "currency": "EUR", "method": "sandbox"},
    )


def audits(action: str, user_id: int) -> list[AuditLog]:
    return list(
        db.session.scalars(
            sa.select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == str(user_id))
        )
    )


# --- the deposit-limit prompt --------------------------------------------------------------


def test_registration_answer_says_the_prompt_is_due(client, prompt_required):
    body = {"username": "prompted", "email": "prompted@example.test", "password": "StrongPass123!"}
    answer = client.post("/api/auth/register", json=body)
    assert answer.status_code == 201, answer.json
    prompt = answer.json["data"]["deposit_limit_prompt"]
    assert prompt["due"] is True
    assert prompt["answer"] is None
    assert prompt["blocks_deposit"] is True


def test_the_first_deposit_is_refused_until_the_prompt_is_answered(
    client, factory, token_for, gateway, prompt_required
):
    player = factory.player()
    headers = token_for(player)
    refused = deposit(client, headers)
    assert refused.status_code == 409, refused.json
    assert refused.json["reason"] == "deposit_limit_prompt_required"
    assert "deposit limit" in refused.json["message"]
    answered = client.post(PROMPT, headers=headers, json={"action": "declined"})
    assert answered.status_code == 200, answered.json
    assert answered.json["data"] == {
        "due": False,
        "answer": "declined",
        "answered_at": answered.json["data"]["answered_at"],
        "blocks_deposit": False,
    }
    assert deposit(client, headers).status_code == 201
    (row,) = audits("rg.deposit_limit_prompt", player.id)
    assert row.after == {"answer": "declined"}


def test_setting_a_limit_through_the_prompt_binds_it(
    client, factory, token_for, gateway, prompt_required
):
    player = factory.player()
    headers = token_for(player)
    answered = client.post(
        PROMPT, headers=headers, json={"action": "set", "amount": "50.00", "period": "weekly"}
    )
    assert answered.status_code == 200, answered.json
    assert answered.json["data"]["answer"] == "set"
    limit = db.session.scalar(sa.select(RgLimit).where(RgLimit.user_id == player.id))
    assert (limit.limit_type, limit.period, limit.value, limit.currency) == (
        "deposit",
        "weekly",
        50_00,
        "EUR",
    )
    assert deposit(client, headers, "50.00").status_code == 201
    over = deposit(client, headers, "0.01")
    assert over.json["code"] == "LIMIT_EXCEEDED"


def test_a_player_who_already_holds_a_deposit_limit_is_not_asked(
    client, factory, token_for, gateway, prompt_required
):
    player = factory.player()
    headers = token_for(player)
    client.post(
        "/api/responsible-gaming/set-limit",
        headers=headers,
        json={"type": "deposit", "period": "daily", "amount": "30.00"},
    )
    assert client.get(PROMPT, headers=headers).json["data"]["due"] is False
    assert deposit(client, headers).status_code == 201
    # "set" without an amount is then accepted: the limit exists.
    assert client.post(PROMPT, headers=headers, json={"action": "set"}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"action": "maybe"},
        {"action": ""},
        {"action": "set"},
        {"action": "set", "amount": "-5"},
        {"action": "set", "amount": "0.001"},
        {"action": "set", "amount": "1e309"},
        {"action": "set", "amount": "abc"},
        {"action": "set\x00"},
        {"action": "declined", "amount": "10.00"},
        {"action": "set", "amount": "10.00", "period": "hourly"},
        {},
    ],
)
def test_bad_prompt_answers_are_refused_and_record_nothing(
    client, factory, token_for, gateway, prompt_required, body
):
    player = factory.player()
    headers = token_for(player)
    answer = client.post(PROMPT, headers=headers, json=body)
    assert answer.status_code in (400, 422), answer.json
    assert client.get(PROMPT, headers=headers).json["data"]["due"] is True
    assert db.session.scalar(sa.select(RgLimit).where(RgLimit.user_id == player.id)) is None
    assert audits("rg.deposit_limit_prompt", player.id) == []


def test_the_prompt_gate_can_be_turned_off(client, factory, token_for, gateway):
    set_opsetting(factory, "deposit_limit_prompt_required", False)
    player = factory.player()
    headers = token_for(player)
    made = deposit(client, headers)
    assert made.status_code == 201
    # Still due, and the first deposit's answer says so.
    assert made.json["data"]["deposit_limit_prompt"]["due"] is True
    assert made.json["data"]["deposit_limit_prompt"]["blocks_deposit"] is False


def test_a_player_with_an_earlier_deposit_is_not_blocked(
    client, factory, token_for, gateway, prompt_required
):
    from app.payments.models import PaymentTransaction

    player = factory.player()
    with atomic():
        db.session.add(
            PaymentTransaction(
                public_id="dep-earlier",
                user_id=player.id,
                gateway_id=gateway.id,
                type="deposit",
                status="completed",
                amount_minor=10_00,
                currency="EUR",
            )
        )
    assert rg.deposit_limit_prompt(player.id)["blocks_deposit"] is False
    assert deposit(client, token_for(player)).status_code == 201


def test_the_prompt_needs_a_player(client, factory, token_for):
    assert client.post(PROMPT, json={"action": "declined"}).status_code == 401


# --- lifting a self-exclusion ------------------------------------------------------------------


def _exclude(player, duration: str) -> RgExclusion:
    user = db.session.get(User, player.id)
    return rg.self_exclude(user, duration)


def test_a_fixed_term_exclusion_lifts_only_after_its_end_plus_24h_and_a_confirmation(
    client, factory, token_for
):
    player = factory.player()
    start = utcnow()
    with freeze_time(start):
        row = _exclude(player, "7_days")
        headers = token_for(player)
        early = client.post(LIFT_REQUEST, headers=headers)
        assert early.status_code == 409
        assert early.json["reason"] == "minimum_period"
    with freeze_time(start + timedelta(days=7, minutes=1)):
        headers = token_for(player)
        # Still excluded after the end: it never lifts by itself.
        assert rg.active_exclusion(player.id).id == row.id
        assert client.post(LIFT_CONFIRM, headers=headers).json["reason"] == "not_requested"
        asked = client.post(LIFT_REQUEST, headers=headers)
        assert asked.status_code == 200, asked.json
        confirmable = asked.json["data"]["lift_confirmable_at"]
        # Asking again does not restart nor shorten the cooling-off.
        assert (
            client.post(LIFT_REQUEST, headers=headers).json["data"]["lift_confirmable_at"]
            == confirmable
        )
    with freeze_time(start + timedelta(days=8)):
        headers = token_for(player)
        waiting = client.post(LIFT_CONFIRM, headers=headers)
        assert waiting.status_code == 409
        assert waiting.json["reason"] == "cooling_off"
        assert rg.active_exclusion(player.id) is not None
    with freeze_time(start + timedelta(days=8, minutes=2)):
        headers = token_for(player)
        done = client.post(LIFT_CONFIRM, headers=headers)
        assert done.status_code == 200, done.json
        assert done.json["data"]["lifted_at"] is not None
        assert rg.active_exclusion(player.id) is None
    assert [a.after["lifted_by"] for a in audits("rg.exclusion.lift", player.id)] == ["player"]
    assert len(audits("rg.exclusion.lift_requested", player.id)) == 1


def test_an_indefinite_exclusion_needs_its_minimum_period_and_seven_days(
    client, factory, token_for
):
    player = factory.player()
    start = utcnow()
    with freeze_time(start):
        _exclude(player, "permanent")
    with freeze_time(start + timedelta(days=181)):
        refused = client.post(LIFT_REQUEST, headers=token_for(player))
        assert refused.json["reason"] == "minimum_period"
    asked_at = start + timedelta(days=183)
    with freeze_time(asked_at):
        assert client.post(LIFT_REQUEST, headers=token_for(player)).status_code == 200
    with freeze_time(asked_at + timedelta(days=6, hours=23)):
        assert client.post(LIFT_CONFIRM, headers=token_for(player)).json["reason"] == "cooling_off"
    with freeze_time(asked_at + timedelta(days=7)):
        assert client.post(LIFT_CONFIRM, headers=token_for(player)).status_code == 200
        assert rg.active_exclusion(player.id) is None


def test_the_cooling_off_follows_the_setting(client, factory, token_for):
    set_opsetting(factory, "rg_exclusion_lift_cooling_hours", 72)
    player = factory.player()
    start = utcnow()
    with freeze_time(start):
        _exclude(player, "24_hours")
    with freeze_time(start + timedelta(days=1, seconds=1)):
        client.post(LIFT_REQUEST, headers=token_for(player))
    with freeze_time(start + timedelta(days=3)):
        assert client.post(LIFT_CONFIRM, headers=token_for(player)).status_code == 409
    with freeze_time(start + timedelta(days=4, seconds=1)):
        assert client.post(LIFT_CONFIRM, headers=token_for(player)).status_code == 200


def test_an_extended_self_exclusion_lifts_in_one_go_after_its_longest_period(
    client, factory, token_for
):
    player = factory.player()
    start = utcnow()
    with freeze_time(start):
        _exclude(player, "7_days")
        _exclude(player, "1_month")  # extended
    with freeze_time(start + timedelta(days=10)):
        assert client.post(LIFT_REQUEST, headers=token_for(player)).json["reason"] == (
            "minimum_period"
        )
    with freeze_time(start + timedelta(days=30, seconds=1)):
        assert client.post(LIFT_REQUEST, headers=token_for(player)).status_code == 200
    with freeze_time(start + timedelta(days=31, seconds=2)):
        assert client.post(LIFT_CONFIRM, headers=token_for(player)).status_code == 200
        assert rg.active_exclusion(player.id) is None
    assert all(row.lifted_at is not None for row in rg.exclusions_of(player.id))


def test_a_time_out_or_no_exclusion_has_nothing_to_lift(client, factory, token_for):
    player = factory.player()
    assert client.post(LIFT_REQUEST, headers=token_for(player)).status_code == 404
    rg.time_out(db.session.get(User, player.id), "24_hours")
    assert client.post(LIFT_REQUEST, headers=token_for(player)).status_code == 404
    assert client.post(LIFT_CONFIRM, headers=token_for(player)).status_code == 404


# --- no reverse withdrawals ------------------------------------------------------------------


def _verified(factory, cash):
    player = factory.player()
    with atomic():
        user = db.session.get(User, player.id)
        user.kyc_status, user.kyc_level = "approved", 1
    fund(player.id, cash)
    return player


def cash_of(user_id: int) -> int:
    db.session.expire_all()
    return db.session.scalar(
        sa.select(Wallet.balance).where(Wallet.user_id == user_id, Wallet.currency == "EUR")
    )


def withdraw(client, headers, amount):
    body = {"amount": amount, "method": "sandbox", "currency": "EUR"}
    return client.post("/api/withdrawals/request", headers=headers, json=body)


def test_a_pending_withdrawal_cannot_be_reversed_into_the_balance(
    client, factory, token_for, gateway
):
    player = _verified(factory, 100_00)
    headers = token_for(player)
    txn = withdraw(client, headers, "60.00").json["data"]
    refused = client.post(f"/api/withdrawals/{txn['id']}/cancel", headers=headers)
    assert refused.status_code == 409
    assert refused.json["reason"] == "withdrawal_reversal_not_allowed"
    assert cash_of(player.id) == 40_00
    db.session.expire_all()
    from app.payments.models import PaymentTransaction

    assert db.session.get(PaymentTransaction, txn["id"]).status == "pending"
    # Staff can still reject it, which returns the funds.
    manager = token_for(factory.staff("manager"))
    rejected = client.post(
        f"/api/admin/payments/withdrawals/{txn['id']}/reject",
        headers=manager,
        json={"reason": "Player asked"},
    )
    assert rejected.status_code == 200, rejected.json
    assert cash_of(player.id) == 100_00


def test_an_operator_may_allow_reversal(client, factory, token_for, gateway):
    set_opsetting(factory, "withdrawal_reversal_allowed", True)
    player = _verified(factory, 100_00)
    headers = token_for(player)
    txn = withdraw(client, headers, "60.00").json["data"]
    assert client.post(f"/api/withdrawals/{txn['id']}/cancel", headers=headers).status_code == 200
    assert cash_of(player.id) == 100_00
