"""Importing each aggregator's game list as downloaded (app/play/game_lists.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.core.crypto import generate_rsa_private_key, rsa_public_pem
from app.core.extensions import db
from app.play import game_lists, games
from app.play.models import Game, Provider
from tests.moneykit import make_provider

DATA = Path(__file__).parent / "data" / "game_lists"

# Per format: what the two good items of its sample list become; item 2 of each is bad.
EXPECTED = {
    "hub88": {
        "pgp_sweet_bonanza": {
            "name": "Sweet Bonanza",
            "category": "video-slots",
            "game_type": "slot",
            "rtp": Decimal("96.51"),
            "status": "active",
            "thumbnail_url": "https://cdn.hub88.example/thumbs/pgp_sweet_bonanza.png",
            "banner_url": "https://cdn.hub88.example/bg/pgp_sweet_bonanza.jpg",
        },
        "evo_lightning_roulette": {
            "name": "Lightning Roulette",
            "category": "live-roulette",
            "game_type": "live",
            "rtp": Decimal("97.30"),
            "status": "inactive",
        },
    },
    "slotegrator": {
        "5b7e9a1c0f0a4c2d8e6b3a1f9c2d4e6f": {
            "name": "Book of Dead",
            "category": "slots",
            "game_type": "slot",
            "status": "active",
            "thumbnail_url": "https://cdn.slotegrator.example/games/book-of-dead.png",
        },
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9": {
            "name": "Live Blackjack A",
            "category": "live-dealer",
            "game_type": "live",
        },
    },
    "softswiss": {
        "bgaming:ElvisFrogInVegas": {
            "name": "Elvis Frog in Vegas",
            "category": "slots",
            "game_type": "slot",
            "rtp": Decimal("96.00"),
            "volatility": "high",
            "has_demo": True,
            "thumbnail_url": "https://cdn.softswiss.example/i/s3/bgaming/ElvisFrogInVegas.png",
        },
        "bgaming:MultihandBlackjack": {
            "name": "Multihand Blackjack",
            "category": "card",
            "game_type": "table",
            "rtp": Decimal("99.50"),
            "has_demo": False,
        },
    },
    "evolution": {
        "vctlz20yfnmp1ylr": {
            "name": "Lightning Roulette",
            "category": "live",
            "game_type": "live",
            "status": "active",
            "min_bet": 20,
            "max_bet": 500_000,
            "has_demo": False,
            "thumbnail_url": "https://evo.example/thumbs/vctlz20yfnmp1ylr_L.jpg",
        },
        "LightningTable01": {
            "name": "Lightning Baccarat",
            "status": "maintenance",
            "min_bet": 100,
            "max_bet": 250_000,
        },
    },
    "pragmatic": {
        "vs20olympgate": {
            "name": "Gates of Olympus",
            "category": "video-slots",
            "game_type": "slot",
            "has_demo": True,
        },
        "402": {
            "name": "Speed Baccarat 1",
            "category": "live-games",
            "game_type": "live",
            "has_demo": False,
        },
    },
    "native": {
        "jx-dice": {
            "name": "Dice Duel",
            "category": "dice",
            "game_type": "instant",
            "rtp": Decimal("99.00"),
            "has_demo": True,
            "min_bet": 10,
            "max_bet": 100_00,
        },
        "jx-mines": {"name": "Mines", "category": "instant", "rtp": Decimal("97.00")},
    },
}

BAD_ITEM_REASON = {
    "hub88": "game_code is required",
    "slotegrator": "name is required",
    "softswiss": "RTP is a percentage above 0, at most 100.00",  # finer than 0.01
    "evolution": "name is required",
    "pragmatic": "gameName is required",
    "native": "max_bet must not be below min_bet",
}


def _provider_for(protocol: str) -> Provider:
    if protocol == "hub88":
        return games.create_provider(
            code="hub88",
            name="Hub88",
            protocol="hub88",
            peer_public_key=rsa_public_pem(generate_rsa_private_key()),
        )
    return make_provider(protocol, protocol=protocol)


def _catalog(provider: Provider) -> dict[str, Game]:
    return {
        g.external_id: g
        for g in db.session.scalars(sa.select(Game).where(Game.provider_id == provider.id))
    }


def _check(game: Game, expected: dict) -> None:
    for field, value in expected.items():
        actual = game.category.slug if field == "category" else getattr(game, field)
        assert actual == value, (game.external_id, field)


def _import(runner, code: str, path: Path, *extra: str):
    return runner.invoke(
        args=["jackpotx", "games", "import", "--provider", code, "--file", str(path), *extra]
    )


@pytest.mark.parametrize("protocol", list(EXPECTED))
def test_each_aggregators_list_imports_as_downloaded_and_reimports_as_updates(runner, protocol):
    provider = _provider_for(protocol)
    path = DATA / f"{protocol}.json"
    first = _import(runner, provider.code, path)
    assert first.exit_code == 1, first.output
    assert f"imported 2, updated 0, failed 1 ({protocol} format)" in first.output
    assert f"item 2: {BAD_ITEM_REASON[protocol]}" in first.output
    catalog = _catalog(provider)
    assert set(catalog) == set(EXPECTED[protocol])
    for external, expected in EXPECTED[protocol].items():
        _check(catalog[external], expected)
    before = {external: (g.id, g.slug) for external, g in catalog.items()}
    second = _import(runner, provider.code, path)
    assert "imported 0, updated 2, failed 1" in second.output
    again = _catalog(provider)
    assert {external: (g.id, g.slug) for external, g in again.items()} == before


def test_the_format_option_overrides_the_providers_protocol(runner):
    provider = make_provider("studio")
    result = _import(runner, provider.code, DATA / "pragmatic.json", "--format", "pragmatic")
    assert "imported 2, updated 0, failed 1 (pragmatic format)" in result.output
    assert set(_catalog(provider)) == {"vs20olympgate", "402"}
    native = _import(runner, provider.code, DATA / "pragmatic.json")
    assert native.exit_code == 2  # an envelope is no native list
    assert "A JSON array of games is required" in native.output
    unknown = _import(runner, provider.code, DATA / "native.json", "--format", "acme")
    assert unknown.exit_code == 2


def test_a_list_that_is_no_list_of_the_format_is_refused_whole(runner, tmp_path):
    provider = make_provider("slotegrator", protocol="slotegrator")
    path = tmp_path / "games.json"
    path.write_text(json.dumps({"games": []}))
    result = _import(runner, provider.code, path)
    assert result.exit_code == 2
    assert '{"items": [...]}' in result.output
    assert _catalog(provider) == {}


def test_reimport_keeps_what_the_list_does_not_carry(runner):
    provider = _provider_for("hub88")
    _import(runner, provider.code, DATA / "hub88.json")
    game = _catalog(provider)["pgp_sweet_bonanza"]
    games.update_game(game.id, {"has_demo": True, "max_bet": "20.00", "is_hot": True})
    _import(runner, provider.code, DATA / "hub88.json")
    db.session.refresh(game)
    assert (game.has_demo, game.max_bet, game.is_hot) == (True, 20_00, True)


def test_staff_import_a_list_in_a_format_through_the_api(client, factory, token_for):
    h = token_for(factory.staff("manager"))
    make_provider("evolution", protocol="evolution")
    make_provider("studio")
    payload = json.loads((DATA / "evolution.json").read_text())

    def post(body):
        # Sent as written: the test client's json= would sort the tables by id.
        return client.post(
            "/api/admin/games/import",
            data=json.dumps(body),
            content_type="application/json",
            headers=h,
        )

    # Default: the provider's protocol, so the lobby state goes in as downloaded.
    first = post({"provider": "evolution", "games": payload})
    assert first.status_code == 200, first.get_json()
    data = first.get_json()["data"]
    assert (data["imported_count"], data["updated_count"], data["failed_count"]) == (2, 0, 1)
    assert data["errors"] == [{"index": 2, "message": "name is required", "errors": []}]
    again = post({"provider": "evolution", "games": payload})
    assert again.status_code == 200, again.get_json()
    data = again.get_json()["data"]
    assert (data["imported_count"], data["updated_count"], data["failed_count"]) == (0, 2, 1)
    # An explicit format, for a provider of another protocol.
    tables = [{"tableId": key, **table} for key, table in payload["tables"].items()]
    other = post({"provider": "studio", "games": tables, "format": "evolution"})
    assert other.status_code == 200, other.get_json()
    assert other.get_json()["data"]["imported_count"] == 2
    assert post({"provider": "studio", "games": [], "format": "acme"}).status_code == 400
    not_a_list = post({"provider": "studio", "games": {"tables": []}})
    assert not_a_list.status_code == 400
    assert not_a_list.get_json()["errors"][0]["field"] == "games"


@pytest.mark.parametrize(
    ("fmt", "item", "reason"),
    [
        ("hub88", "not an object", "each game must be an object"),
        ("hub88", {"game_code": "x", "name": "X", "enabled": "maybe"}, "enabled must be a boolean"),
        ("slotegrator", {"uuid": ["x"], "name": "X"}, "uuid must be text"),
        ("evolution", {"id": "t", "name": "T", "betLimits": [1]}, "betLimits must be an object"),
        ("pragmatic", {"gameName": "X"}, "gameID is required"),
    ],
)
def test_a_bad_item_says_why(fmt, item, reason):
    with pytest.raises(game_lists.ValidationError) as caught:
        game_lists.FORMATS[fmt].map_item(item)
    assert caught.value.message.startswith(reason)


def test_every_provider_protocol_has_a_game_list_format():
    from app.play.models import PROVIDER_PROTOCOLS

    assert set(PROVIDER_PROTOCOLS) <= set(game_lists.FORMATS)
