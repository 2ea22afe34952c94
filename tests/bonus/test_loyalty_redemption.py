"""Loyalty points buy the operator's rewards (bonus money or free spins) in one transaction:
points taken and bonus granted together, refusals change nothing, a retry is a no-op, racing
redemptions never spend more than the balance, and spending never lowers the level."""

from __future__ import annotations

import secrets
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from app.bonus import loyalty, promotions, redemption
from app.bonus.models import (
    FreeSpinGrant,
    LoyaltyAccount,
    LoyaltyEvent,
    LoyaltyReward,
    PlayerBonus,
)
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from app.play.models import Game
from app.seed import seed_originals
from app.wallet.models import LedgerTransaction, Wallet
from tests.moneykit import open_table, reconcile_clean


@pytest.fixture(autouse=True)
def levels(app):
    with atomic():
        loyalty.ensure_levels()


def template(**kw):
    data = {
        "name": "Loyalty bonus",
        "type": "no_deposit",
        "currency": "EUR",
        "bonus_amount_minor": 1_00,
        "wagering_multiplier": 5,
    }
    data.update(kw)
    return promotions.create_promotion(data)  # a template: it never runs as an offer


def reward(code="bonus10", points=1_000, amount=10_00, **kw):
    p = template(**kw)
    with atomic():
        row = LoyaltyReward(
            code=code,
            name=f"Reward {code}",
            points=points,
            promotion_id=p.id,
            bonus_amount_minor=amount,
            active=True,
        )
        db.session.add(row)
    return row


def give(user_id: int, points: int) -> None:
    with atomic():
        loyalty.award(user_id, points, kind="referral", reference=f"test:{secrets.token_hex(6)}",
                      currency="EUR", amount=0)  # fmt: skip


def account(user_id: int) -> LoyaltyAccount | None:
    db.session.expire_all()
    return db.session.get(LoyaltyAccount, user_id)


def bonus_balance(user_id: int, currency: str = "EUR") -> int:
    db.session.expire_all()
    w = db.session.scalar(
        select(Wallet).where(Wallet.user_id == user_id, Wallet.currency == currency)
    )
    return 0 if w is None else w.bonus_balance


def test_the_catalogue_shows_what_the_player_can_afford(client, factory, token_for):
    reward("cheap", points=100)
    reward("dear", points=5_000)
    player = factory.player()
    give(player.id, 300)
    answer = client.get("/api/loyalty/redemptions", headers=token_for(player))
    assert answer.status_code == 200, answer.json
    data = answer.json["data"]
    assert data["points"] == 300
    items = {i["code"]: i for i in data["items"]}
    assert items["cheap"]["affordable"] is True
    assert items["cheap"]["kind"] == "bonus"
    assert items["cheap"]["bonus_amount"] == "10.00"
    assert items["dear"]["affordable"] is False
    assert items["dear"]["points_missing"] == 4_700


def test_redeeming_takes_the_points_and_grants_bonus_money_through_the_ledger(
    client, factory, token_for
):
    reward("bonus10", points=1_000, amount=10_00)
    player = factory.player()
    give(player.id, 1_500)  # Silver (1 000)
    headers = {**token_for(player), "Idempotency-Key": "redeem-1"}
    answer = client.post("/api/loyalty/redeem", headers=headers, json={"reward": "bonus10"})
    assert answer.status_code == 201, answer.json
    data = answer.json["data"]
    assert data["points_spent"] == 1_000
    assert data["bonus"]["amount"] == "10.00"
    # Spending points does not lower the level: it follows the points earned.
    assert data["loyalty"]["points"] == 500
    assert data["loyalty"]["earned_points"] == 1_500
    assert data["loyalty"]["level"]["code"] == "silver"
    acc = account(player.id)
    assert (acc.points, acc.redeemed_points, acc.level_code) == (500, 1_000, "silver")
    assert bonus_balance(player.id) == 10_00
    grant = db.session.scalar(
        select(LedgerTransaction).where(
            LedgerTransaction.user_id == player.id, LedgerTransaction.type == "bonus_grant"
        )
    )
    assert grant is not None
    assert grant.bonus_delta == 10_00
    (bonus,) = db.session.scalars(select(PlayerBonus).where(PlayerBonus.user_id == player.id))
    assert bonus.wagering_required_minor == 50_00  # the template's 5x
    kinds = db.session.scalars(
        select(LoyaltyEvent.kind).where(LoyaltyEvent.user_id == player.id).order_by(LoyaltyEvent.id)
    ).all()
    assert kinds == ["referral", "redemption"]
    assert (
        db.session.scalar(
            select(func.count(AuditLog.id)).where(AuditLog.action == "loyalty.redeem")
        )
        == 1
    )
    # The same request again: the first answer, nothing spent twice.
    again = client.post("/api/loyalty/redeem", headers=headers, json={"reward": "bonus10"})
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["data"]["id"] == data["id"]
    assert account(player.id).points == 500
    assert bonus_balance(player.id) == 10_00
    reconcile_clean()


def test_refusals_change_nothing(client, factory, token_for):
    reward("bonus10", points=1_000)
    player = factory.player()
    headers = token_for(player)
    give(player.id, 999)

    def redeem(code):
        return client.post("/api/loyalty/redeem", headers=headers, json={"reward": code})

    short = redeem("bonus10")
    assert short.status_code == 409, short.json
    assert short.json["code"] == "INSUFFICIENT_POINTS"
    assert redeem("nope").status_code == 404
    give(player.id, 5_000)
    # One bonus contract per wallet: a bonus in progress refuses the reward.
    first = redeem("bonus10")
    assert first.status_code == 201, first.json
    second = redeem("bonus10")
    assert second.status_code == 409
    assert second.json["code"] == "BONUS_OPEN"
    assert account(player.id).points == 4_999
    excluded = client.post(
        "/api/responsible-gaming/self-exclude", headers=headers, json={"duration": "6_months"}
    )
    assert excluded.status_code in (200, 201), excluded.json
    refused = redeem("bonus10")
    assert refused.status_code == 403
    assert refused.json["code"] == "SELF_EXCLUDED"
    assert account(player.id).points == 4_999
    assert (
        db.session.scalar(
            select(func.count(PlayerBonus.id)).where(PlayerBonus.user_id == player.id)
        )
        == 1
    )
    assert (
        db.session.scalar(
            select(func.count(LoyaltyEvent.id)).where(
                LoyaltyEvent.user_id == player.id, LoyaltyEvent.kind == "redemption"
            )
        )
        == 1
    )
    reconcile_clean()


def test_points_buy_free_spins_on_the_promotions_game(client, factory, token_for):
    with atomic():
        seed_originals()
    game = db.session.scalar(sa.select(Game.id).where(Game.external_id == "jxo-slot"))
    p = template(name="Loyalty spins", type="free_spins", free_spins_count=5,
                 free_spins_game_id=game, free_spin_value_minor=20, wagering_multiplier=10,
                 bonus_amount_minor=None)  # fmt: skip
    player = factory.player()
    give(player.id, 800)
    admin = factory.staff("admin")
    put = client.put(
        "/api/admin/loyalty/rewards",
        headers=token_for(admin),
        json={"code": "spins5", "name": "5 free spins", "points": 800, "promotion_id": p.id},
    )
    assert put.status_code == 201, put.json
    assert put.json["data"]["kind"] == "free_spins"
    answer = client.post(
        "/api/loyalty/redeem", headers=token_for(player), json={"reward": put.json["data"]["id"]}
    )
    assert answer.status_code == 201, answer.json
    assert answer.json["data"]["bonus"]["free_spins"]["spins_total"] == 5
    grant = db.session.scalar(select(FreeSpinGrant).where(FreeSpinGrant.user_id == player.id))
    assert (grant.spins_total, grant.spin_value_minor, grant.game_id) == (5, 20, game)
    assert account(player.id).points == 0
    assert bonus_balance(player.id) == 0  # spins, not money (their wins will be the bonus)
    reconcile_clean()


def test_a_refund_after_the_points_were_spent_takes_back_only_what_is_left(client, factory):
    table = open_table(client, factory, cash=100_00)
    assert table.bet("b1", "20.00")["status"] == "ok"
    reward("small", points=15, amount=1_00)
    user = db.session.get(User, table.user_id)
    redemption.redeem(user, "small")
    assert account(table.user_id).points == 5
    assert table.refund("rf1", "b1")["status"] == "ok"
    acc = account(table.user_id)
    assert (acc.points, acc.redeemed_points) == (0, 15)
    last = db.session.scalar(
        select(LoyaltyEvent).where(LoyaltyEvent.user_id == table.user_id)
        .order_by(LoyaltyEvent.id.desc()).limit(1)
    )  # fmt: skip
    assert (last.kind, last.points) == ("reversal", -5)


@pytest.mark.usefixtures("requires_postgres")
def test_racing_redemptions_never_spend_more_than_the_balance(app, committed_db):
    from tests.conftest import Factory

    with app.app_context():
        loyalty.ensure_levels()
        reward("eur", points=100, amount=1_00)
        reward("usd", points=100, amount=1_00, currency="USD")
        uid = Factory().player().id
        give(uid, 150)  # enough for one of the two, in different wallets (no bonus_open)
        db.session.remove()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(code: str) -> None:
        with app.app_context():
            user = db.session.get(User, uid)
            barrier.wait()
            try:
                redemption.redeem(user, code)
                outcomes.append("ok")
            except redemption.InsufficientPoints:
                outcomes.append("short")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(c,)) for c in ("eur", "usd")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "short"]
    with app.app_context():
        acc = db.session.get(LoyaltyAccount, uid)
        assert (acc.points, acc.redeemed_points) == (50, 100)
        assert db.session.scalar(select(func.count(PlayerBonus.id))) == 1
        reconcile_clean()
        db.session.remove()


def test_the_demo_seed_has_a_catalogue_and_a_player_referral_that_paid(runner, client):
    result = runner.invoke(args=["jackpotx", "seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    codes = set(db.session.scalars(select(LoyaltyReward.code)))
    assert codes == {"bonus-5", "bonus-20", "spins-10"}
    player1 = db.session.scalar(select(User).where(User.username == "player1"))
    cleo = db.session.scalar(select(User).where(User.username == "ref_cleo"))
    assert cleo.referred_by_id == player1.id
    event = db.session.scalar(
        select(LoyaltyEvent).where(LoyaltyEvent.reference == f"referral:{cleo.id}")
    )
    assert event is not None
    assert event.user_id == player1.id
    assert event.points == 500
    # The README's tour: player1 spends those points on free spins.
    answer = redemption.redeem(player1, "spins-10", request_key="tour-1")
    assert answer["points_spent"] == 300
    assert answer["bonus"]["free_spins"]["spins_total"] == 10
