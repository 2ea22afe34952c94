"""Loyalty points follow applied cash stakes; refunds and rollbacks take them back; levels."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.bonus import loyalty
from app.bonus.models import LoyaltyAccount, LoyaltyEvent
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import Notification
from app.wallet.models import LedgerTransaction
from tests.moneykit import open_table, reconcile_clean


@pytest.fixture(autouse=True)
def levels(app):
    with atomic():
        loyalty.ensure_levels()


def ok(answer: dict) -> dict:
    # A listener that raised would turn the callback into INTERNAL_ERROR (still HTTP 200).
    assert answer["status"] == "ok", answer
    return answer


def points_of(user_id: int) -> int:
    db.session.expire_all()
    account = db.session.get(LoyaltyAccount, user_id)
    return 0 if account is None else account.points


def events_of(user_id: int) -> list[tuple[str, int]]:
    return [
        (e.kind, e.points)
        for e in db.session.scalars(
            select(LoyaltyEvent).where(LoyaltyEvent.user_id == user_id).order_by(LoyaltyEvent.id)
        )
    ]


def test_each_applied_cash_stake_earns_points_once(client, factory):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "12.34"))
    ok(table.bet("b1", "12.34"))  # the provider retries: same answer, no new points
    ok(table.bet("b2", "0.99", round_id="r2"))  # less than a unit: no points, no event
    ok(table.win("w1", "50.00"))  # wins earn nothing
    assert points_of(table.user_id) == 12
    assert events_of(table.user_id) == [("wager", 12)]
    # Points are not money: the wallet's ledger has only the deposit, bets and the win.
    types = db.session.scalars(
        select(LedgerTransaction.type).where(LedgerTransaction.user_id == table.user_id)
    ).all()
    assert sorted(types) == ["bet", "bet", "deposit", "win"]
    reconcile_clean()


def test_a_refund_takes_the_points_back_once_and_a_win_rollback_does_not(client, factory):
    table = open_table(client, factory, cash=100_00)
    ok(table.bet("b1", "20.00"))
    ok(table.bet("b2", "5.00", round_id="r2"))
    ok(table.win("w2", "1.00", round_id="r2"))
    assert points_of(table.user_id) == 25
    ok(table.refund("rf1", "b1"))
    ok(table.refund("rf1", "b1"))  # replay
    ok(table.rollback("rb1", "b1"))  # already refunded: a no-op
    ok(table.rollback("rb2", "w2"))  # undoing a win leaves the stake's points alone
    assert points_of(table.user_id) == 5
    assert events_of(table.user_id) == [("wager", 20), ("wager", 5), ("reversal", -20)]
    ok(table.rollback("rb3", "b2"))
    assert points_of(table.user_id) == 0
    reconcile_clean()


def test_bonus_money_earns_no_points(client, factory):
    table = open_table(client, factory, cash=0, bonus=50_00)
    ok(table.bet("b1", "30.00"))
    assert points_of(table.user_id) == 0


def test_points_raise_the_level_and_a_rollback_lowers_it(client, factory, token_for, app):
    app.config["LOYALTY_POINTS_PER_UNIT"] = 100
    try:
        table = open_table(client, factory, cash=500_00)
        ok(table.bet("b1", "5.00"))  # 500 points: Bronze, half-way to Silver
        from app.identity.models import User

        headers = token_for(db.session.get(User, table.user_id))
        me = client.get("/api/user/loyalty", headers=headers).json["data"]
        assert me["points"] == 500
        assert me["level"]["code"] == "bronze"
        assert me["next_level"]["code"] == "silver"
        assert (me["points_to_next_level"], me["progress_percent"]) == (500, 50)
        assert [lv["code"] for lv in me["levels"]] == ["bronze", "silver", "gold", "platinum"]
        assert me["history"][0]["points"] == 500
        ok(table.bet("b2", "6.00", round_id="r2"))  # 1100 points: Silver
        profile = client.get("/api/user/profile", headers=headers).json["data"]
        assert profile["loyalty"]["level"]["code"] == "silver"
        assert profile["loyalty"]["next_level"]["code"] == "gold"
        assert profile["loyalty"]["progress_percent"] == 100 * 100 // 9000
        home = client.get("/api/home", headers=headers).json["data"]
        assert home["player"]["loyalty"]["points"] == 1100
        notes = db.session.scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == table.user_id, Notification.type == "loyalty"
            )
        )
        assert notes == 1
        ok(table.rollback("rb2", "b2"))
        me = client.get("/api/user/loyalty", headers=headers).json["data"]
        assert (me["points"], me["level"]["code"]) == (500, "bronze")
        assert me["history_total"] == 3
    finally:
        app.config["LOYALTY_POINTS_PER_UNIT"] = 1


def test_loyalty_needs_a_token_and_pages_are_checked(client, factory, token_for):
    assert client.get("/api/user/loyalty").status_code == 401
    headers = token_for(factory.player())
    assert client.get("/api/user/loyalty?limit=abc", headers=headers).status_code == 400
    empty = client.get("/api/user/loyalty", headers=headers).json["data"]
    assert (empty["points"], empty["level"]["code"], empty["history"]) == (0, "bronze", [])


def test_a_stale_round_refund_takes_the_points_back(client, factory):
    from datetime import timedelta

    import sqlalchemy as sa

    from app.core.base import utcnow
    from app.play import rounds
    from app.play.models import GameRound

    table = open_table(client, factory, cash=50_00)
    ok(table.bet("b1", "30.00", round_id="never-finished"))
    assert points_of(table.user_id) == 30
    with atomic():
        db.session.execute(sa.update(GameRound).values(updated_at=utcnow() - timedelta(hours=2)))
    report = rounds.settle_stale(timedelta(hours=1))
    assert report.refunded_bets == 1
    assert points_of(table.user_id) == 0
    assert events_of(table.user_id) == [("wager", 30), ("reversal", -30)]
    reconcile_clean()
