"""Lottery draws: paid tickets within limits, a winner anyone can recompute, refunds on cancel."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.compliance import responsible_gaming
from app.core.base import utcnow
from app.core.db import atomic
from app.core.errors import Conflict
from app.core.extensions import db
from app.prizes import lottery
from app.prizes.models import LotteryDraw, LotteryTicket
from app.wallet.models import LedgerTransaction
from tests.moneykit import fund, reconcile_clean


def make_draw(factory, **kw) -> LotteryDraw:
    now = utcnow()
    data = {
        "title": "Villa draw",
        "currency": "EUR",
        "prize_amount": "500.00",
        "ticket_price": "2.50",
        "max_tickets": 10,
        "max_per_player": 4,
        "sales_open_at": now - timedelta(minutes=5),
        "sales_close_at": now + timedelta(hours=1),
    }
    data.update(kw)
    return lottery.create(data, actor=factory.staff("admin"))


def close_sales(draw_id: int) -> None:
    past = utcnow() - timedelta(seconds=1)
    db.session.execute(
        sa.update(LotteryDraw)
        .where(LotteryDraw.id == draw_id)
        .values(sales_close_at=past, draw_at=past)
    )


def funded_player(factory, cash=100_00):
    player = factory.player()
    fund(player.id, cash)
    return player


def cash_of(user_id: int) -> int:
    from app.wallet import ledger as wallet

    db.session.expire_all()
    w = wallet.wallet_for(user_id, "EUR")
    return w.balance


def buy(client, token_for, player, draw_id, count, **headers):
    return client.post(
        f"/api/lottery/draws/{draw_id}/tickets",
        json={"count": count},
        headers={**token_for(player), **headers},
    )


def test_tickets_are_paid_from_the_wallet_within_the_limits(client, factory, token_for):
    draw = make_draw(factory)
    alice = funded_player(factory)
    bob = funded_player(factory)
    r = buy(client, token_for, alice, draw.id, 3)
    assert r.status_code == 201, r.get_json()
    assert [t["number"] for t in r.get_json()["data"]["tickets"]] == [1, 2, 3]
    assert cash_of(alice.id) == 100_00 - 7_50
    assert buy(client, token_for, alice, draw.id, 2).status_code == 409  # 4 per player
    assert buy(client, token_for, bob, draw.id, 4).status_code == 201
    r = buy(client, token_for, funded_player(factory), draw.id, 4)
    assert r.status_code == 409  # only 3 left of 10
    poor = buy(client, token_for, funded_player(factory, cash=1_00), draw.id, 1)
    assert poor.status_code == 400
    assert poor.get_json()["code"] == "INSUFFICIENT_BALANCE"
    mine = client.get("/api/user/tickets", headers=token_for(alice)).get_json()["data"]
    assert sorted(t["number"] for t in mine) == [1, 2, 3]
    reconcile_clean()


def test_a_retried_purchase_with_the_same_key_buys_nothing_more(client, factory, token_for):
    draw = make_draw(factory)
    alice = funded_player(factory)
    first = buy(client, token_for, alice, draw.id, 2, **{"Idempotency-Key": "k1"})
    again = buy(client, token_for, alice, draw.id, 2, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert first.get_json()["data"]["tickets"] == again.get_json()["data"]["tickets"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert cash_of(alice.id) == 95_00


def test_the_same_key_for_another_purchase_is_refused_and_debits_nothing(
    client, factory, token_for
):
    draw = make_draw(factory)
    other_draw = make_draw(factory, title="Car draw")
    alice = funded_player(factory)
    assert buy(client, token_for, alice, draw.id, 1, **{"Idempotency-Key": "k2"}).status_code == 201
    more = buy(client, token_for, alice, draw.id, 3, **{"Idempotency-Key": "k2"})
    elsewhere = buy(client, token_for, alice, other_draw.id, 1, **{"Idempotency-Key": "k2"})
    assert [r.get_json()["code"] for r in (more, elsewhere)] == ["IDEMPOTENCY_KEY_REUSED"] * 2
    assert more.status_code == 422
    assert cash_of(alice.id) == 97_50
    assert len(lottery.tickets_of(alice.id)) == 1
    reconcile_clean()


def test_responsible_gaming_limits_apply_to_tickets(client, factory, token_for):
    draw = make_draw(factory)
    alice = funded_player(factory)
    with atomic():
        responsible_gaming.set_limit(
            alice, limit_type="wager", period="daily", value=5_00, currency="EUR"
        )
    assert buy(client, token_for, alice, draw.id, 2).status_code == 201
    r = buy(client, token_for, alice, draw.id, 1)
    assert r.get_json()["code"] == "LIMIT_EXCEEDED", r.get_json()
    assert cash_of(alice.id) == 95_00


def test_sales_outside_the_window_are_refused(client, factory, token_for):
    draw = make_draw(
        factory,
        sales_open_at=utcnow() + timedelta(hours=1),
        sales_close_at=utcnow() + timedelta(hours=2),
    )
    assert buy(client, token_for, funded_player(factory), draw.id, 1).status_code == 409


def test_the_winner_is_recomputable_from_published_data_and_paid_once(client, factory, token_for):
    draw = make_draw(factory)
    before = client.get(f"/api/lottery/draws/{draw.id}").get_json()["data"]
    assert before["server_seed"] is None
    commitment = before["server_seed_hash"]
    players = [funded_player(factory) for _ in range(3)]
    for p in players:
        assert buy(client, token_for, p, draw.id, 3).status_code == 201
    with pytest.raises(Conflict):
        lottery.run_draw(draw.id)  # not yet
    close_sales(draw.id)
    lottery.draw_due()
    lottery.run_draw(draw.id)  # a rerun changes nothing
    after = client.get(f"/api/lottery/draws/{draw.id}").get_json()["data"]
    seed = after["server_seed"]
    assert hashlib.sha256(seed.encode()).hexdigest() == commitment
    ids = sorted(
        db.session.scalars(sa.select(LotteryTicket.id).where(LotteryTicket.draw_id == draw.id))
    )
    public = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()
    assert after["public_value"] == public
    # The published formula, recomputed independently of the service.
    limit = (1 << 256) - (1 << 256) % len(ids)
    i = 0
    while (
        v := int(hmac.new(seed.encode(), f"{public}:{i}".encode(), hashlib.sha256).hexdigest(), 16)
    ) >= limit:
        i += 1
    assert after["winning_ticket_id"] == ids[v % len(ids)]
    verified = client.get(f"/api/lottery/draws/{draw.id}/verify").get_json()["data"]
    assert verified["verified"] is True
    winner = db.session.get(LotteryTicket, after["winning_ticket_id"]).user_id
    prizes = db.session.execute(
        sa.select(LedgerTransaction.user_id, LedgerTransaction.cash_delta).where(
            LedgerTransaction.source == "lottery", LedgerTransaction.type == "win"
        )
    ).all()
    assert prizes == [(winner, 500_00)]
    assert cash_of(winner) == 100_00 - 7_50 + 500_00
    reconcile_clean()


def test_a_tampered_ticket_list_fails_verification(client, factory, token_for):
    draw = make_draw(factory)
    for _ in range(2):
        buy(client, token_for, funded_player(factory), draw.id, 2)
    close_sales(draw.id)
    lottery.run_draw(draw.id)
    db.session.execute(
        sa.update(LotteryTicket)
        .where(LotteryTicket.draw_id == draw.id, LotteryTicket.number == 1)
        .values(status="refunded")
    )
    assert lottery.verify(draw.id)["verified"] is False


def test_cancel_refunds_every_ticket_once(client, factory, token_for):
    draw = make_draw(factory)
    alice, bob = funded_player(factory), funded_player(factory)
    buy(client, token_for, alice, draw.id, 3)
    buy(client, token_for, bob, draw.id, 1)
    admin = factory.staff("admin")
    r = client.post(
        f"/api/admin/lottery/draws/{draw.id}/cancel",
        json={"reason": "venue unavailable"},
        headers=token_for(admin),
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["data"]["state"] == "cancelled"
    lottery.cancel(draw.id, actor=admin, reason="again")
    assert (cash_of(alice.id), cash_of(bob.id)) == (100_00, 100_00)
    refunds = db.session.scalar(
        sa.select(sa.func.count(LedgerTransaction.id)).where(
            LedgerTransaction.source == "lottery", LedgerTransaction.type == "refund"
        )
    )
    assert refunds == 4
    assert buy(client, token_for, alice, draw.id, 1).status_code == 409
    close_sales(draw.id)
    assert lottery.run_draw(draw.id).status == "cancelled"
    reconcile_clean()


def test_only_staff_with_promotions_create_draws(client, factory, token_for):
    now = utcnow()
    body = {
        "title": "Car",
        "currency": "EUR",
        "prize_type": "item",
        "prize_description": "A red car",
        "ticket_price": "1",
        "max_tickets": 100,
        "sales_open_at": now.isoformat(),
        "sales_close_at": (now + timedelta(days=1)).isoformat(),
    }
    r = client.post("/api/admin/lottery/draws", json=body, headers=token_for(factory.player()))
    assert r.status_code == 403
    r = client.post(
        "/api/admin/lottery/draws", json=body, headers=token_for(factory.staff("manager"))
    )
    assert r.status_code == 201, r.get_json()
    assert len(r.get_json()["data"]["server_seed_hash"]) == 64
