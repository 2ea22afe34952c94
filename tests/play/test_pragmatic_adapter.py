"""The Pragmatic-style adapter maps a foreign protocol onto the same wallet service."""

from __future__ import annotations

import pytest

from app.core.extensions import db
from app.identity.models import User
from app.play import games
from app.play.callbacks.adapters import pragmatic_hash
from tests.moneykit import SECRET, fund, make_game, make_provider, reconcile_clean


@pytest.fixture
def pp(client, factory):
    provider = make_provider("pplay", protocol="pragmatic")
    game = make_game("pplay", "vs20wolf")
    player = factory.player()
    fund(player.id, 100_00)
    token = games.launch(player, game.id).session_token

    def call(action: str, secret: str = SECRET, **params):
        params = {"providerId": "pplay", **{k: str(v) for k, v in params.items()}}
        params["hash"] = pragmatic_hash(secret, params)
        response = client.post(f"/api/provider-callback/{provider.code}/{action}", data=params)
        assert response.status_code == 200
        return response.get_json()

    return call, player, token


def test_hash_is_md5_of_sorted_params_plus_secret():
    import hashlib

    params = {"userId": "7", "amount": "1.5", "hash": "ignored"}
    expected = hashlib.md5(b"amount=1.5&userId=7secret", usedforsecurity=False).hexdigest()
    assert pragmatic_hash("secret", params) == expected


def test_full_round_over_the_pragmatic_protocol(pp):
    call, player, token = pp
    auth = call("authenticate.html", token=token)
    assert (auth["error"], auth["userId"], auth["currency"], auth["cash"]) == (
        0,
        str(player.id),
        "EUR",
        100.0,
    )
    assert call("balance", userId=player.id)["cash"] == 100.0
    bet = call(
        "bet",
        userId=player.id,
        gameId="vs20wolf",
        roundId="R1",
        amount="2.50",
        reference="ref1",
        timestamp="1",
    )
    assert (bet["error"], bet["cash"], bet["usedPromo"]) == (0, 97.5, 0)
    assert bet["transactionId"].isdigit()
    again = call(
        "bet",
        userId=player.id,
        gameId="vs20wolf",
        roundId="R1",
        amount="2.50",
        reference="ref1",
        timestamp="1",
    )
    assert again == bet
    result = call(
        "result", userId=player.id, gameId="vs20wolf", roundId="R1", amount="10", reference="ref2"
    )
    assert result["cash"] == 107.5
    assert call("endRound", userId=player.id, gameId="vs20wolf", roundId="R1")["error"] == 0
    closed = call(
        "bet", userId=player.id, gameId="vs20wolf", roundId="R1", amount="1", reference="ref3"
    )
    assert closed["error"] == 3
    reconcile_clean()


def test_refund_maps_to_a_single_refund_of_the_bet(pp):
    call, player, _token = pp
    call("bet", userId=player.id, gameId="vs20wolf", roundId="R1", amount="5", reference="b1")
    first = call("refund", userId=player.id, reference="b1")
    second = call("refund", userId=player.id, reference="b1")
    assert first["error"] == second["error"] == 0
    db.session.expire_all()
    assert call("balance", userId=player.id)["cash"] == 100.0
    # A refund of a bet never seen is accepted and blocks the late bet.
    assert call("refund", userId=player.id, reference="ghost")["error"] == 0
    late = call(
        "bet", userId=player.id, gameId="vs20wolf", roundId="R2", amount="1", reference="ghost"
    )
    assert late["error"] == 7


@pytest.mark.parametrize(
    ("action", "params", "code"),
    [
        ("bet", {"amount": "1000"}, 1),
        ("bet", {"amount": "0.001"}, 7),
        ("bet", {"gameId": "nope"}, 8),
        ("authenticate", {"token": "bad"}, 4),
    ],
)
def test_errors_map_to_pragmatic_codes(pp, action, params, code):
    call, player, _token = pp
    base = {
        "userId": player.id,
        "gameId": "vs20wolf",
        "roundId": "R1",
        "amount": "1",
        "reference": "e1",
    }
    if action == "authenticate":
        base = {}
    answer = call(action, **{**base, **params})
    assert answer["error"] == code
    assert "description" in answer


def test_wrong_hash_is_error_5_and_blocked_player_is_error_6(pp):
    call, player, _token = pp
    assert call("balance", secret="wrong-secret", userId=player.id)["error"] == 5
    from app.core.db import atomic

    with atomic():
        db.session.get(User, player.id).status = "banned"
    answer = call(
        "bet", userId=player.id, gameId="vs20wolf", roundId="R1", amount="1", reference="x1"
    )
    assert answer["error"] == 6


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


@pytest.mark.parametrize(
    "spelling",
    [
        lambda n: f" {n}",
        lambda n: f"+{n}",
        lambda n: f"{n}\n",
        lambda n: f"{str(n)[:1]}_{str(n)[1:] or '0'}",  # int() reads "1_23" as 123
        lambda n: str(n).translate(ARABIC_INDIC),  # int() reads these digits too
        lambda n: f"{n}.0",
        lambda n: "²",
        lambda n: "12345678901234567890",
        lambda n: "-1",
    ],
    ids=[
        "space",
        "plus",
        "newline",
        "underscores",
        "arabic-indic",
        "decimal",
        "superscript",
        "20-digits",
        "negative",
    ],
)
def test_a_user_id_that_is_not_plain_digits_is_an_unknown_player(pp, spelling):
    call, player, _token = pp
    params = {"gameId": "vs20wolf", "roundId": "R1", "amount": "1", "reference": "e1"}
    answer = call("bet", userId=spelling(player.id), **params)
    assert answer["error"] == 4, answer  # INVALID_SESSION, never another player or a 500
    assert call("balance", userId=player.id)["cash"] == 100.0
