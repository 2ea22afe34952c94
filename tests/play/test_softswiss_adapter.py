"""The SoftSwiss-style adapter: signature, several actions in one transaction, idempotency by
``action_id``, and the code mapping, through the Flask test client."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from app.core.extensions import db
from app.identity.models import User
from app.play import games
from app.play.callbacks import replay
from app.play.callbacks.adapters.softswiss import SIGNATURE_HEADER, error_of, softswiss_signature
from app.play.callbacks.protocol import CallbackResult
from app.play.models import GameRound, ProviderCallback
from tests.moneykit import SECRET, fund, make_game, make_provider, reconcile_clean


@pytest.fixture
def ss(client, factory):
    provider = make_provider("sswiss", protocol="softswiss")
    game = make_game("sswiss", "ss-slot")
    player = factory.player()
    fund(player.id, 100_00)
    token = games.launch(player, game.id).session_token

    def call(path: str, body: dict[str, Any], *, secret: str = SECRET, sign: bool = True):
        data = json.dumps(
            {"user_id": str(player.id), "currency": "EUR", "game": "ss-slot", **body}
        ).encode()
        headers = {SIGNATURE_HEADER: softswiss_signature(secret, data)} if sign else {}
        response = client.post(
            f"/api/provider-callback/{provider.code}/{path}",
            data=data,
            headers=headers,
            content_type="application/json",
        )
        return response.status_code, response.get_json()

    return call, player, token


def _bet(action_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"action": "bet", "action_id": action_id, "amount": amount, **extra}


def _win(action_id: str, amount: int) -> dict[str, Any]:
    return {"action": "win", "action_id": action_id, "amount": amount}


def test_the_signature_is_hex_hmac_sha256_of_the_raw_body():
    body = b'{"user_id":"7"}'
    assert softswiss_signature("s3", body) == hmac.new(b"s3", body, hashlib.sha256).hexdigest()


def test_a_play_without_actions_is_a_balance_request(ss):
    call, _player, _token = ss
    assert call("play", {}) == (200, {"balance": 100_00})


def test_a_bad_or_missing_signature_is_403_and_moves_nothing(ss):
    call, _player, _token = ss
    play = {"game_id": "R1", "actions": [_bet("a1", 100)]}
    assert call("play", play, secret="other") == (
        403,
        {"code": 403, "message": "X-REQUEST-SIGN does not match the body"},
    )
    assert call("play", play, sign=False)[0] == 403
    assert call("play", {}) == (200, {"balance": 100_00})


def test_a_bet_and_a_win_in_one_play_answer_both_transactions_and_finished_closes(ss):
    call, _player, _token = ss
    play = {
        "game_id": "R2",
        "finished": True,
        "actions": [_bet("a2", 250, jackpot_contribution=3), _win("a2w", 1000)],
    }
    status, body = call("play", play)
    assert status == 200
    assert body["balance"] == 100_00 - 250 + 1000
    assert body["game_id"] == "R2"
    assert [t["action_id"] for t in body["transactions"]] == ["a2", "a2w"]
    assert all(t["tx_id"] and t["processed_at"] for t in body["transactions"])
    rnd = db.session.query(GameRound).filter_by(external_round_id="R2").one()
    assert (rnd.status, rnd.total_bet, rnd.total_win) == ("closed", 250, 1000)
    status, body = call("play", {"game_id": "R2", "actions": [_bet("a2b", 100)]})
    assert (status, body["code"]) == (409, 107)
    reconcile_clean()


def test_one_refused_action_rolls_the_whole_play_back(ss):
    call, _player, _token = ss
    play = {"game_id": "R3", "actions": [_bet("a3", 500), _bet("a3b", 1_000_000)]}
    assert call("play", play) == (412, {"balance": 100_00, "code": 100,
                                        "message": "Insufficient funds"})  # fmt: skip
    assert call("play", {}) == (200, {"balance": 100_00})
    # Nothing of the first bet was kept: its action_id is free and applies alone.
    status, body = call("play", {"game_id": "R3", "actions": [_bet("a3", 500)]})
    assert (status, body["balance"]) == (200, 100_00 - 500)
    reconcile_clean()


def test_a_retried_play_answers_the_same_transactions_and_moves_money_once(ss):
    call, _player, _token = ss
    play = {"game_id": "R4", "actions": [_bet("a4", 300), _win("a4w", 100)]}
    first = call("play", play)
    again = call("play", play)
    assert first == again
    assert first[1]["balance"] == 100_00 - 200
    assert call("play", {}) == (200, {"balance": 100_00 - 200})
    changed = {"game_id": "R4", "actions": [_bet("a4", 301)]}
    status, body = call("play", changed)
    assert (status, body["code"]) == (409, 107)
    reconcile_clean()


def test_a_rollback_gives_the_stake_back_once(ss):
    call, _player, _token = ss
    call("play", {"game_id": "R5", "actions": [_bet("a5", 700)]})
    undo = {"game_id": "R5", "actions": [
        {"action": "rollback", "action_id": "x5", "original_action_id": "a5"}]}  # fmt: skip
    first = call("rollback", undo)
    assert first[0] == 200
    assert first[1]["balance"] == 100_00
    assert call("rollback", undo) == first
    assert call("play", {}) == (200, {"balance": 100_00})
    reconcile_clean()


def test_a_blocked_player_is_110_and_a_wrong_currency_153(ss):
    call, player, _token = ss
    status, body = call("play", {"game_id": "R6", "currency": "USD",
                                 "actions": [_bet("a6", 100)]})  # fmt: skip
    assert (status, body["code"]) == (400, 153)
    db.session.get(User, player.id).status = "suspended"
    db.session.flush()
    status, body = call("play", {"game_id": "R6", "actions": [_bet("a6b", 100)]})
    assert (status, body["code"]) == (403, 110)


@pytest.mark.parametrize("amount", [-1, 1.5, "100", None, True])
def test_an_amount_that_is_not_whole_minor_units_is_400(ss, amount):
    call, _player, _token = ss
    status, body = call("play", {"game_id": "R7", "actions": [_bet("a7", amount)]})
    assert (status, body["code"]) == (400, 400)
    assert call("play", {}) == (200, {"balance": 100_00})


def test_an_unknown_game_is_154_and_an_unknown_session_101(ss):
    call, _player, _token = ss
    status, body = call("play", {"game": "nope", "game_id": "R8", "actions": [_bet("a8", 1)]})
    assert (status, body["code"]) == (404, 154)
    status, body = call("play", {"session_id": "no-such-token"})
    assert (status, body["code"]) == (403, 101)


def test_an_outage_answers_500_so_that_the_aggregator_retries(ss, monkeypatch):
    call, _player, _token = ss
    from app.play.callbacks import actions

    def down(*_args, **_kwargs):
        raise ConnectionRefusedError("database down")

    monkeypatch.setitem(actions._HANDLERS, "bet", down)
    play = {"game_id": "R9", "actions": [_bet("a9", 100)]}
    status, body = call("play", play)
    assert (status, body["code"]) == (500, 500)
    monkeypatch.undo()
    assert call("play", play)[1]["balance"] == 100_00 - 100


def _logged_plays() -> list[ProviderCallback]:
    return list(
        db.session.scalars(
            db.select(ProviderCallback)
            .where(ProviderCallback.action == "batch")
            .order_by(ProviderCallback.id)
        )
    )


def test_a_logged_play_replays_to_the_same_transactions(ss):
    call, _player, _token = ss
    _status, body = call(
        "play", {"game_id": "R10", "actions": [_bet("a10", 100), _win("a10w", 50)]}
    )
    (row,) = _logged_plays()
    _row, result = replay.replay(row.id)
    assert (result.ok, result.duplicate) == (True, True)
    assert result.extra["transactions"] == body["transactions"]
    assert call("play", {}) == (200, {"balance": 100_00 - 50})


def test_a_refused_play_replays_to_the_same_refusal_and_moves_nothing(ss):
    call, player, _token = ss
    play = {"game_id": "R11", "actions": [_bet("a11", 60_00), _bet("a11b", 60_00)]}
    assert call("play", play)[0] == 412
    fund(player.id, 20_00)
    (row,) = _logged_plays()
    _row, result = replay.replay(row.id)
    assert (result.ok, result.code) == (False, "INSUFFICIENT_FUNDS")
    assert call("play", {}) == (200, {"balance": 120_00})
    reconcile_clean()


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        ("INSUFFICIENT_FUNDS", None, (412, 100)),
        ("INVALID_SESSION", None, (403, 101)),
        ("INVALID_SESSION", "expired", (403, 101)),
        ("LIMIT_EXCEEDED", None, (403, 105)),
        ("DUPLICATE_MISMATCH", None, (409, 107)),
        ("ROUND_CLOSED", None, (409, 107)),
        ("ROUND_NOT_FOUND", None, (404, 107)),
        ("PLAYER_BLOCKED", None, (403, 110)),
        ("VALIDATION_ERROR", "currency", (400, 153)),
        ("GAME_NOT_FOUND", None, (404, 154)),
        ("INVALID_SIGNATURE", None, (403, 403)),
        ("VALIDATION_ERROR", None, (400, 400)),
        ("INTERNAL_ERROR", None, (500, 500)),
        ("FREE_ROUND_REFUSED", None, (400, 400)),
    ],
)
def test_our_codes_map_to_softswiss_codes(code, reason, expected):
    assert error_of(CallbackResult("error", code=code, reason=reason)) == expected
