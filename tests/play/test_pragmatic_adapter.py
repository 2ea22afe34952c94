"""The Pragmatic-style adapter maps a foreign protocol onto the same wallet service."""

from __future__ import annotations

import pytest

from app.core.extensions import db
from app.identity.models import User
from app.play import games
from app.play.callbacks.adapters import pragmatic_hash
from app.play.callbacks.adapters.pragmatic import status_of
from app.play.callbacks.protocol import CallbackResult
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
    assert answer["error"] == 2, answer  # player not found, never another player or a 500
    assert call("balance", userId=player.id)["cash"] == 100.0


# --- the rest of the method set and Pragmatic's own codes ----------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        ("INSUFFICIENT_FUNDS", None, 1),
        ("INVALID_SESSION", "player", 2),
        ("ROUND_CLOSED", None, 3),
        ("INVALID_SESSION", "expired", 4),
        ("INVALID_SIGNATURE", None, 5),
        ("PLAYER_BLOCKED", None, 6),
        ("DUPLICATE_MISMATCH", None, 7),
        ("GAME_NOT_FOUND", None, 8),
        ("LIMIT_EXCEEDED", None, 50),
        ("INTERNAL_ERROR", None, 100),
        ("ACCESS_DENIED", None, 120),
        ("FREE_ROUND_NOT_FOUND", None, 120),
    ],
)
def test_our_codes_map_to_pragmatics(code, reason, error):
    assert status_of(CallbackResult("error", code=code, reason=reason)) == error


def test_an_outage_answers_100_so_that_pragmatic_retries(pp, monkeypatch):
    call, player, _token = pp
    from app.play.callbacks import actions

    def down(*_args, **_kwargs):
        raise ConnectionRefusedError("database down")

    monkeypatch.setitem(actions._HANDLERS, "bet", down)
    params = {"gameId": "vs20wolf", "roundId": "R1", "amount": "1", "reference": "o1"}
    assert call("bet", userId=player.id, **params)["error"] == 100
    monkeypatch.undo()
    assert call("bet", userId=player.id, **params)["error"] == 0
    assert call("balance", userId=player.id)["cash"] == 99.0


def test_each_method_answers_pragmatics_fields(pp):
    call, player, token = pp
    balance = call("balance", userId=player.id)
    assert (balance["currency"], balance["cash"], balance["bonus"], balance["totalBalance"]) == (
        "EUR", 100.0, 0.0, 100.0,
    )  # fmt: skip
    auth = call("authenticate", token=token)
    assert (auth["token"], auth["userId"]) == (token, str(player.id))
    params = {"userId": player.id, "gameId": "vs20wolf", "roundId": "R9"}
    bet = call("bet", amount="1.10", reference="f1", **params)
    assert set(bet) >= {"transactionId", "currency", "cash", "bonus", "usedPromo", "error"}
    win = call("result", amount="0.30", reference="f2", **params)
    assert set(win) >= {"transactionId", "currency", "cash", "bonus"}
    assert win["cash"] == 99.2
    end = call("endRound", **params)
    assert (end["error"], end["cash"]) == (0, 99.2)
    assert "transactionId" not in end


def test_a_missing_parameter_is_error_7_and_moves_nothing(pp):
    call, player, _token = pp
    answer = call("bet", userId=player.id, gameId="vs20wolf", amount="1", reference="m1")
    assert answer["error"] == 7
    assert "roundId" in answer["description"]
    assert call("balance", userId=player.id)["cash"] == 100.0


def test_bonus_win_pays_in_its_round_once(pp):
    call, player, _token = pp
    params = {"userId": player.id, "gameId": "vs20wolf", "roundId": "FR1"}
    call("bet", amount="1", reference="fb1", **params)
    first = call("bonusWin", amount="4.20", reference="bw1", bonusCode="B7", **params)
    again = call("bonusWin", amount="4.20", reference="bw1", bonusCode="B7", **params)
    assert first == again
    assert first["cash"] == 103.2
    assert call("bonusWin", amount="5", reference="bw1", **params)["error"] == 7
    assert call("balance", userId=player.id)["cash"] == 103.2
    reconcile_clean()


def test_promo_win_credits_a_campaign_prize_once(pp):
    call, player, _token = pp
    promo = {"userId": player.id, "campaignId": "T1", "campaignType": "T", "currency": "EUR"}
    first = call("promoWin", amount="25", reference="pw1", **promo)
    assert (first["error"], first["cash"]) == (0, 125.0)
    assert call("promoWin", amount="25", reference="pw1", **promo) == first
    assert (
        call("promoWin", amount="25", reference="pw2", **{**promo, "currency": "USD"})["error"] == 7
    )
    assert call("promoWin", amount="0", reference="pw3", **promo)["error"] == 7
    assert call("balance", userId=player.id)["cash"] == 125.0
    reconcile_clean()


def test_a_closed_round_is_error_3_and_an_expired_token_error_4(pp):
    call, player, token = pp
    params = {"userId": player.id, "gameId": "vs20wolf", "roundId": "C1"}
    call("bet", amount="1", reference="c1", **params)
    call("endRound", **params)
    assert call("bet", amount="1", reference="c2", **params)["error"] == 3
    from datetime import timedelta

    from sqlalchemy import update

    from app.core.base import utcnow
    from app.core.db import atomic
    from app.play.models import GameSession

    with atomic():
        db.session.execute(
            update(GameSession)
            .where(GameSession.token == token)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    late = {**params, "roundId": "C3", "token": token}
    assert call("bet", amount="1", reference="c3", **late)["error"] == 4
    # A result settles on an expired session.
    assert call("result", amount="2", reference="c4", **{**params, "token": token})["error"] == 0
