"""JxOriginals studio without the wallet: demo play, seeds, the public verifier, the pages."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from sqlalchemy import select, update

from app.core.db import atomic
from app.core.extensions import db
from app.originals import engine
from app.originals.models import OriginalsRound, OriginalsSeed, OriginalsSession


def _launch_demo(client, game="jxo-dice"):
    response = client.get(f"/originals/launch/{game}?mode=demo&currency=EUR")
    assert response.status_code == 303
    path = urlparse(response.headers["Location"]).path
    assert path.startswith("/originals/play/")
    return path.rsplit("/", 1)[1]


def _state(client, token):
    response = client.get(f"/originals/api/sessions/{token}")
    assert response.status_code == 200
    return response.get_json()["data"]


def test_demo_dice_plays_with_play_money_and_records_the_round(client):
    token = _launch_demo(client)
    before = _state(client, token)
    assert before["demo"] is True
    assert before["balance"] == "1000.00"
    assert before["seed"]["next_nonce"] == 0
    assert before["seed"]["server_seed"] is None  # committed, not revealed

    response = client.post(
        f"/originals/api/sessions/{token}/rounds", json={"stake": "10.00", "target": "50.00"}
    )
    assert response.status_code == 201
    played = response.get_json()["data"]
    assert played["status"] == "settled"
    assert played["nonce"] == 0
    expected = 1000_00 - 10_00 + (19_80 if played["result"]["win"] else 0)
    assert played["balance"] == f"{expected // 100}.{expected % 100:02d}"
    assert played["payout"] == ("19.80" if played["result"]["win"] else "0.00")
    assert _state(client, token)["seed"]["next_nonce"] == 1


def test_demo_slot_spins_and_pays_by_the_paytable(client):
    token = _launch_demo(client, "jxo-slot")
    balance = 1000_00
    for _ in range(5):
        response = client.post(f"/originals/api/sessions/{token}/rounds", json={"stake": 1})
        assert response.status_code == 201
        spin = response.get_json()["data"]
        balance += int(spin["result"]["multiplier"]) * 100 - 100
        assert spin["payout"] == f"{int(spin['result']['multiplier'])}.00"
    assert _state(client, token)["balance"] == f"{balance // 100}.{balance % 100:02d}"


def test_demo_stake_above_the_play_balance_is_refused(client):
    token = _launch_demo(client)
    with atomic():
        db.session.execute(
            update(OriginalsSession).where(OriginalsSession.token == token).values(balance=5_00)
        )
    response = client.post(
        f"/originals/api/sessions/{token}/rounds", json={"stake": "5.01", "target": 50}
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "INSUFFICIENT_BALANCE"
    state = _state(client, token)
    assert state["balance"] == "5.00"
    assert state["seed"]["next_nonce"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"stake": "0.001", "target": "50"}, "stake"),
        ({"stake": "-5", "target": "50"}, "stake"),
        ({"stake": "1e309", "target": "50"}, "stake"),
        ({"stake": "abc", "target": "50"}, "stake"),
        ({"stake": "0.05", "target": "50"}, "stake"),
        ({"stake": "100.01", "target": "50"}, "stake"),
        ({"stake": "1", "target": "99"}, "target"),
        ({"stake": "1"}, "target"),
    ],
)
def test_invalid_bets_are_refused_and_use_no_nonce(client, body, field):
    token = _launch_demo(client)
    response = client.post(f"/originals/api/sessions/{token}/rounds", json=body)
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["code"] == "VALIDATION_ERROR"
    assert payload["errors"][0]["field"] == field
    state = _state(client, token)
    assert state["seed"]["next_nonce"] == 0
    assert state["balance"] == "1000.00"


def test_an_unknown_session_gets_a_not_found_envelope_and_page(client):
    response = client.post("/originals/api/sessions/nope/rounds", json={"stake": 1, "target": 50})
    assert response.status_code == 404
    assert response.get_json()["code"] == "NOT_FOUND"
    page = client.get("/originals/play/nope")
    assert page.status_code == 404
    assert b"launch the game again" in page.data


def test_launching_real_money_without_a_casino_token_is_refused(client):
    response = client.get("/originals/launch/jxo-dice")
    assert response.status_code == 401
    assert b"session token" in response.data


def test_rotation_reveals_the_seed_that_matches_the_committed_hash_and_every_round(client):
    token = _launch_demo(client, "jxo-slot")
    committed = _state(client, token)["seed"]
    rounds = [
        client.post(f"/originals/api/sessions/{token}/rounds", json={"stake": 1}).get_json()["data"]
        for _ in range(3)
    ]
    pending = client.get(f"/originals/api/rounds/{rounds[0]['round_id']}").get_json()["data"]
    assert pending["seed"]["server_seed"] is None
    assert pending["verification"]["verified"] is None

    rotated = client.post(
        f"/originals/api/sessions/{token}/seed", json={"client_seed": "my-own.seed_1"}
    ).get_json()["data"]
    previous, current = rotated["previous"], rotated["current"]
    assert previous["server_seed_hash"] == committed["server_seed_hash"]
    assert engine.seed_hash(previous["server_seed"]) == committed["server_seed_hash"]
    assert previous["next_nonce"] == 3
    assert current["client_seed"] == "my-own.seed_1"
    assert current["next_nonce"] == 0
    assert current["server_seed"] is None
    assert current["server_seed_hash"] != committed["server_seed_hash"]

    for played in rounds:
        view = client.get(f"/originals/api/rounds/{played['round_id']}").get_json()["data"]
        assert view["verification"] == {"verified": True, "problems": []}
        check = client.get(
            "/originals/verify",
            query_string={
                "game": "jxo-slot",
                "server_seed": previous["server_seed"],
                "client_seed": previous["client_seed"],
                "nonce": played["nonce"],
                "server_seed_hash": committed["server_seed_hash"],
            },
        ).get_json()["data"]
        assert check["hash_matches"] is True
        assert check["result"] == played["result"]


def test_a_tampered_round_or_seed_is_reported_by_verification(client):
    token = _launch_demo(client)
    played = client.post(
        f"/originals/api/sessions/{token}/rounds", json={"stake": 5, "target": "60.00"}
    ).get_json()["data"]
    revealed = client.post(f"/originals/api/sessions/{token}/seed", json={}).get_json()["data"][
        "previous"
    ]
    # Someone rewrites the stored result and payout after the fact.
    forged = dict(played["result"], roll="99.99", win=False)
    with atomic():
        db.session.execute(
            update(OriginalsRound)
            .where(OriginalsRound.round_ref == played["round_id"])
            .values(result=forged, payout=0)
        )
    view = client.get(f"/originals/api/rounds/{played['round_id']}").get_json()["data"]
    assert view["verification"]["verified"] is False
    assert "stored result differs from the recomputed one" in view["verification"]["problems"]

    # A revealed seed that is not the committed one is caught too.
    with atomic():
        db.session.execute(
            update(OriginalsSeed)
            .where(OriginalsSeed.server_seed_hash == revealed["server_seed_hash"])
            .values(server_seed="0" * 64)
        )
    view = client.get(f"/originals/api/rounds/{played['round_id']}").get_json()["data"]
    assert (
        "revealed server seed does not match the committed hash" in view["verification"]["problems"]
    )

    # And the public verifier flags a seed that does not hash to the commitment.
    check = client.get(
        "/originals/verify",
        query_string={
            "game": "jxo-dice",
            "server_seed": ("1" if revealed["server_seed"][0] == "0" else "0")
            + revealed["server_seed"][1:],
            "client_seed": revealed["client_seed"],
            "nonce": 0,
            "server_seed_hash": revealed["server_seed_hash"],
        },
    ).get_json()["data"]
    assert check["hash_matches"] is False


def test_verify_recomputes_a_dice_roll_with_or_without_the_target(client):
    server = "ab" * 32
    plain = client.get(
        "/originals/verify",
        query_string={"game": "jxo-dice", "server_seed": server, "client_seed": "c", "nonce": 4},
    )
    assert plain.status_code == 200
    data = plain.get_json()["data"]
    assert data["hash_matches"] is None
    assert set(data["result"]) == {"roll"}
    with_target = client.get(
        "/originals/verify",
        query_string={
            "game": "jxo-dice",
            "server_seed": server,
            "client_seed": "c",
            "nonce": 4,
            "target": "50.00",
        },
    ).get_json()["data"]
    assert with_target["result"]["roll"] == data["result"]["roll"]
    assert with_target["hmac"] == data["hmac"]


@pytest.mark.parametrize(
    "query",
    [
        {"game": "roulette", "server_seed": "a", "client_seed": "c", "nonce": 0},
        {"game": "jxo-dice", "server_seed": "a", "client_seed": "c", "nonce": -1},
        {"game": "jxo-dice", "server_seed": "a", "client_seed": "c"},
        {"game": "jxo-dice", "server_seed": "a", "client_seed": "c", "nonce": 0, "target": "x"},
    ],
)
def test_verify_refuses_malformed_questions(client, query):
    response = client.get("/originals/verify", query_string=query)
    assert response.status_code == 400
    assert response.get_json()["code"] == "VALIDATION_ERROR"


def test_client_seeds_with_separators_are_refused(client):
    token = _launch_demo(client)
    response = client.post(f"/originals/api/sessions/{token}/seed", json={"client_seed": "a:1"})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "client_seed"


def test_a_player_has_exactly_one_active_seed_pair(client):
    token = _launch_demo(client)
    for _ in range(3):
        client.post(f"/originals/api/sessions/{token}/seed", json={})
    rows = db.session.scalars(
        select(OriginalsSeed).where(OriginalsSeed.player_ref == f"demo:{token}")
    ).all()
    assert sorted(r.status for r in rows) == ["active", "revealed", "revealed", "revealed"]
    assert all(r.server_seed for r in rows if r.status == "revealed")
    assert len({r.server_seed_hash for r in rows}) == 4


def test_game_pages_render_without_inline_scripts_and_publish_the_rtp(client):
    for game in ("jxo-dice", "jxo-slot"):
        token = _launch_demo(client, game)
        page = client.get(f"/originals/play/{token}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert "<script>" not in html
        assert '<script src="/static/originals/game.js"></script>' in html
        assert "http://" not in html.replace("http://localhost", "")
        assert "DEMO" in html
    rules = client.get("/originals/games/jxo-slot").get_data(as_text=True)
    assert "96.19140625%" in rules
    assert "SEVEN SEVEN SEVEN" in rules
    dice_rules = client.get("/originals/games/jxo-dice").get_data(as_text=True)
    assert "99.00%" in dice_rules
    fairness = client.get("/originals/fairness")
    assert fairness.status_code == 200
    assert b"HMAC-SHA256" in fairness.data
    for asset in ("game.js", "verify.js", "originals.css"):
        with client.get(f"/static/originals/{asset}") as response:
            assert response.status_code == 200


def test_the_studio_publishes_its_game_list_for_import(client):
    games = client.get("/originals/api/games").get_json()["data"]
    assert {g["external_id"] for g in games} == {"jxo-dice", "jxo-slot"}
    assert {g["rtp"] for g in games} == {"99.00", "96.19"}
