"""The home feed: public lobby data for everyone, the player's own money only for them."""

from __future__ import annotations

from app.bonus import promotions
from app.lobby import home
from tests.moneykit import open_table


def activate(**kw):
    p = promotions.create_promotion(
        {"name": "Free 5", "type": "no_deposit", "currency": "EUR", "bonus_amount_minor": 5_00,
         **kw}
    )  # fmt: skip
    return promotions.set_status(p.id, "active")


def test_anonymous_home_shows_games_promotions_and_masked_big_wins(
    client, factory, app, monkeypatch
):
    monkeypatch.setitem(app.config, "HOME_CACHE_SECONDS", 0)
    table = open_table(client, factory, cash=100_00)
    from app.core.extensions import db
    from app.identity.models import User
    from app.play.models import Game

    game = db.session.query(Game).filter_by(external_id=table.game_external).one()
    game.is_featured = True
    db.session.flush()
    activate()
    table.bet("b1", "1.00", round_id="big")
    table.win("w1", "25.00", round_id="big")  # 25x: a big win
    table.bet("b2", "10.00", round_id="small")
    table.win("w2", "12.00", round_id="small")  # 1.2x: not
    answer = client.get("/api/home")
    assert answer.status_code == 200
    data = answer.json["data"]
    assert [g["id"] for g in data["featured_games"]] == [game.id]
    assert [p["name"] for p in data["promotions"]] == ["Free 5"]
    (win,) = data["big_wins"]
    username = db.session.get(User, table.user_id).username
    assert win["amount"] == "25.00"
    assert win["multiplier"] == "25.0"
    assert win["player"] != username
    assert win["player"][0] == username[0]
    assert "user_id" not in win
    assert data["player"] is None


def test_a_logged_in_player_also_sees_balances_bonus_and_recent_activity(
    client, factory, token_for, app, monkeypatch
):
    monkeypatch.setitem(app.config, "HOME_CACHE_SECONDS", 0)
    p = activate(wagering_multiplier=10)
    player = factory.player()
    headers = token_for(player)
    client.post(f"/api/promotions/claim/{p.id}", headers=headers, json={})
    client.post("/api/support/tickets", headers=headers, json={"subject": "Hi", "message": "?"})
    mine = client.get("/api/home", headers=headers).json["data"]["player"]
    assert mine["user"]["id"] == player.id
    assert mine["wallets"] == [
        {"currency": "EUR", "balance": "0.00", "bonus_balance": "5.00", "held_balance": "0.00"}
    ]
    assert mine["active_bonus"]["wagering_required"] == "50.00"
    assert [a["type"] for a in mine["recent_activity"]] == ["bonus_grant"]
    assert mine["stats"]["open_tickets"] == 1
    assert mine["stats"]["unread_notifications"] >= 1
    bad = client.get("/api/home", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401  # a token that is sent must be valid


def test_the_public_part_is_cached_briefly_and_the_personal_part_never(
    client, factory, token_for, app, monkeypatch
):
    monkeypatch.setitem(app.config, "HOME_CACHE_SECONDS", 30)
    first = client.get("/api/home").json["data"]
    assert first["promotions"] == []
    activate()
    assert client.get("/api/home").json["data"]["promotions"] == []  # cached
    player = factory.player()
    from tests.moneykit import fund

    fund(player.id, cash=12_34)
    mine = client.get("/api/home", headers=token_for(player)).json["data"]["player"]
    assert mine["wallets"][0]["balance"] == "12.34"  # money is never served from cache
    app.extensions["redis"].delete(home.CACHE_KEY)
    assert len(client.get("/api/home").json["data"]["promotions"]) == 1
