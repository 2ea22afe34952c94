"""Game catalog, favorites, launch, and the staff games API."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa

from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import User
from app.play import games
from app.play.models import Game, GameSession, Provider
from tests.moneykit import make_provider


@pytest.fixture
def catalog():
    studio = make_provider(
        "studio", name="Studio One", launch_url="https://studio.example/launch?t={token}&g={game}"
    )
    other = make_provider("other", name="Other Games", currencies=["USD"])
    games.import_games(
        "studio",
        [
            {
                "external_id": "wolf",
                "name": "Wolf Gold",
                "category": "slots",
                "is_featured": True,
                "rtp": "96.01",
                "min_bet": "0.20",
                "max_bet": "100",
                "thumbnail": "https://x/w.png",
            },
            {"external_id": "dice", "name": "Dice Duel", "category": "dice", "is_new": True},
            {"external_id": "old", "name": "Old Wolf", "category": "slots", "status": "inactive"},
        ],
    )
    games.import_games(
        "other",
        [
            {"external_id": "bj", "name": "Blackjack", "category": "table", "is_hot": True},
        ],
    )
    ids = {g.external_id: g.id for g in db.session.scalars(sa.select(Game))}
    return {"studio": studio, "other": other, **ids}


def _names(response) -> list[str]:
    return sorted(g["name"] for g in response.get_json()["data"])


def test_catalog_lists_only_active_games_with_filters(client, catalog):
    assert _names(client.get("/api/games")) == ["Blackjack", "Dice Duel", "Wolf Gold"]
    assert _names(client.get("/api/games?provider=studio")) == ["Dice Duel", "Wolf Gold"]
    assert _names(client.get("/api/games?provider=Other Games")) == ["Blackjack"]
    assert _names(client.get("/api/games?category=slots")) == ["Wolf Gold"]
    assert _names(client.get("/api/games?featured=true")) == ["Wolf Gold"]
    assert _names(client.get("/api/games?new=true")) == ["Dice Duel"]
    assert _names(client.get("/api/games?hot=true")) == ["Blackjack"]
    assert _names(client.get("/api/games?search=WOLF")) == ["Wolf Gold"]
    assert _names(client.get("/api/games/featured")) == ["Wolf Gold"]


def test_the_guides_filter_names_work_and_unknown_filters_are_refused(client, catalog):
    assert _names(client.get("/api/games?is_featured=true")) == ["Wolf Gold"]
    assert _names(client.get("/api/games?is_new=true")) == ["Dice Duel"]
    assert _names(client.get("/api/games?is_hot=true")) == ["Blackjack"]
    assert _names(client.get("/api/games?is_hot=false")) == ["Dice Duel", "Wolf Gold"]
    assert _names(client.get("/api/games?hot=true&is_hot=true")) == ["Blackjack"]
    assert client.get("/api/games?hot=true&is_hot=false").status_code == 400
    unknown = client.get("/api/games?featurd=true")
    assert unknown.status_code == 400
    assert "featurd" in str(unknown.get_json())


def test_catalog_paginates_by_page_or_offset(client, catalog):
    first = client.get("/api/games?limit=2").get_json()
    assert first["meta"] == {"page": 1, "limit": 2, "total": 3, "offset": 0}
    second = client.get("/api/games?limit=2&offset=2").get_json()
    assert second["meta"]["page"] == 2
    assert len(second["data"]) == 1
    assert client.get("/api/games?limit=2&page=2").get_json()["data"] == second["data"]


def test_game_detail_shapes_money_and_rtp(client, catalog):
    data = client.get(f"/api/games/{catalog['wolf']}").get_json()["data"]
    assert data["rtp"] == "96.01"
    assert (data["min_bet"], data["max_bet"]) == ("0.20", "100.00")
    assert data["provider"] == "Studio One"
    assert data["thumbnail"] == "https://x/w.png"
    assert client.get(f"/api/games/{catalog['old']}").status_code == 404


def test_providers_and_categories(client, catalog):
    providers = client.get("/api/games/providers").get_json()["data"]
    assert {p["code"] for p in providers} == {"studio", "other"}
    assert all("secret" not in str(p) for p in providers)
    categories = {
        c["slug"]: c["games_count"] for c in client.get("/api/games/categories").get_json()["data"]
    }
    assert categories == {"slots": 1, "dice": 1, "table": 1}


def test_favorites_toggle_list_and_delete(client, catalog, factory, token_for):
    player = factory.player()
    h = token_for(player)
    on = client.post("/api/games/favorite", json={"game_id": catalog["wolf"]}, headers=h)
    assert on.get_json()["data"] == {"game_id": catalog["wolf"], "is_favorite": True}
    client.post("/api/games/favorite", json={"game_id": catalog["dice"]}, headers=h)
    listed = client.get("/api/games/favorites", headers=h).get_json()["data"]
    assert {g["name"] for g in listed} == {"Wolf Gold", "Dice Duel"}
    off = client.post("/api/games/favorite", json={"game_id": catalog["wolf"]}, headers=h)
    assert off.get_json()["data"]["is_favorite"] is False
    assert client.delete(f"/api/games/favorite/{catalog['dice']}", headers=h).status_code == 200
    assert client.delete(f"/api/games/favorite/{catalog['dice']}", headers=h).status_code == 200
    assert client.get("/api/games/favorites", headers=h).get_json()["data"] == []
    db.session.expire_all()
    assert db.session.get(Game, catalog["wolf"]).favorite_count == 0
    missing = client.post("/api/games/favorite", json={"game_id": 99999}, headers=h)
    assert missing.status_code == 404


def test_play_opens_a_session_with_an_unguessable_token(client, catalog, factory, token_for):
    player = factory.player()
    response = client.post(f"/api/games/play/{catalog['wolf']}", headers=token_for(player))
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert set(data) >= {"launch_url", "session_token", "expires_at", "demo"}
    assert data["demo"] is False
    assert len(data["session_token"]) >= 43
    query = parse_qs(urlparse(data["launch_url"]).query)
    assert query == {"t": [data["session_token"]], "g": ["wolf"]}
    session = db.session.scalar(
        sa.select(GameSession).where(GameSession.token == data["session_token"])
    )
    assert session.user_id == player.id
    assert session.currency == "EUR"
    db.session.expire_all()
    assert db.session.get(Game, catalog["wolf"]).play_count == 1
    again = client.post(
        "/api/games/play",
        json={"game_id": catalog["wolf"], "demo": True},
        headers=token_for(player),
    ).get_json()["data"]
    assert again["demo"] is True
    assert again["session_token"] != data["session_token"]


def test_play_refuses_inactive_games_blocked_players_and_foreign_currencies(
    client, catalog, factory, token_for
):
    player = factory.player()
    h = token_for(player)
    assert client.post("/api/games/play/99999", headers=h).status_code == 404
    assert client.post(f"/api/games/play/{catalog['old']}", headers=h).status_code == 400
    assert (
        client.post(f"/api/games/play/{catalog['bj']}", headers=h).get_json()["errors"][0]["field"]
        == "currency"
    )
    assert (
        client.post(
            f"/api/games/play/{catalog['bj']}", json={"currency": "USD"}, headers=h
        ).status_code
        == 200
    )
    with atomic():
        db.session.execute(
            sa.update(Provider).where(Provider.code == "studio").values(active=False)
        )
    assert client.post(f"/api/games/play/{catalog['wolf']}", headers=h).status_code == 400
    with atomic():
        db.session.execute(sa.update(User).where(User.id == player.id).values(status="suspended"))
    response = client.post(f"/api/games/play/{catalog['bj']}", json={"currency": "USD"}, headers=h)
    # A suspended account's token is refused by the API gate before the game is considered.
    assert response.status_code == 403
    assert response.get_json()["code"] == "ACCESS_DENIED"


def test_staff_can_list_update_and_import_games(client, catalog, factory, token_for):
    manager = factory.staff("manager")
    h = token_for(manager)
    listed = client.get("/api/admin/games?status=inactive", headers=h).get_json()
    assert [g["name"] for g in listed["data"]] == ["Old Wolf"]
    updated = client.put(
        f"/api/admin/games/{catalog['old']}",
        json={"status": "active", "is_hot": True, "rtp": 95.5, "max_bet": "50.00"},
        headers=h,
    )
    assert updated.status_code == 200, updated.get_json()
    data = updated.get_json()["data"]
    assert (data["status"], data["is_hot"], data["rtp"], data["max_bet"]) == (
        "active",
        True,
        "95.50",
        "50.00",
    )
    bad = client.put(f"/api/admin/games/{catalog['old']}", json={"rtp": 101}, headers=h)
    assert bad.status_code == 400
    imported = client.post(
        "/api/admin/games/import",
        json={
            "provider": "studio",
            "games": [
                {"external_id": "wolf", "name": "Wolf Gold Deluxe"},
                {"external_id": "new1", "name": "Fresh", "category": "slots"},
                {"name": "no id"},
            ],
        },
        headers=h,
    ).get_json()["data"]
    assert (imported["imported_count"], imported["updated_count"], imported["failed_count"]) == (
        1,
        1,
        1,
    )
    assert (
        db.session.scalar(
            sa.select(sa.func.count(AuditLog.id)).where(AuditLog.action == "game.update")
        )
        == 1
    )
    support = factory.staff("support")
    assert client.get("/api/admin/games", headers=token_for(support)).status_code == 403


def test_staff_manage_providers_without_ever_seeing_secrets(client, factory, token_for):
    admin = factory.staff("admin")
    h = token_for(admin)
    created = client.post(
        "/api/admin/games/providers",
        json={
            "code": "acme",
            "name": "Acme",
            "secret": "s" * 20,
            "currencies": ["eur"],
            "ip_allowlist": ["10.0.0.0/8"],
        },
        headers=h,
    )
    assert created.status_code == 201, created.get_json()
    data = created.get_json()["data"]
    assert "secret" not in data
    assert data["currencies"] == ["EUR"]
    row = db.session.get(Provider, data["id"])
    assert "s" * 20 not in row.secret_enc
    dup = client.post(
        "/api/admin/games/providers",
        json={"code": "acme", "name": "Acme", "secret": "s" * 20},
        headers=h,
    )
    assert dup.status_code == 409
    rotated = client.put(
        f"/api/admin/games/providers/{data['id']}",
        json={"secret": "t" * 20, "active": False},
        headers=h,
    )
    assert rotated.get_json()["data"]["active"] is False
    listed = client.get("/api/admin/games/providers", headers=h).get_json()["data"]
    assert "t" * 20 not in str(listed)
    bad_ip = client.post(
        "/api/admin/games/providers",
        json={"code": "bad", "name": "Bad", "secret": "s" * 20, "ip_allowlist": ["nope"]},
        headers=h,
    )
    assert bad_ip.status_code == 400
