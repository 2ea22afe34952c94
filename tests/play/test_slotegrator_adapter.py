"""The Slotegrator GIS-style adapter: the header-covering HMAC-SHA1, the clock-skew window,
nonces spent once, decimal amounts, and the error codes, through the Flask test client."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from app.core.extensions import db
from app.play import games
from app.play.callbacks import replay
from app.play.callbacks.adapters.slotegrator import error_code_of, slotegrator_signature
from app.play.callbacks.protocol import CallbackResult
from app.play.models import ProviderCallback, ProviderNonce
from tests.moneykit import SECRET, fund, make_game, make_provider, reconcile_clean


@pytest.fixture
def gis(client, factory):
    provider = make_provider("slotg", protocol="slotegrator")
    game = make_game("slotg", "sg-slot")
    player = factory.player()
    fund(player.id, 100_00)
    token = games.launch(player, game.id).session_token

    def call(
        params: dict[str, Any],
        *,
        secret: str = SECRET,
        sign: bool = True,
        timestamp: int | None = None,
        nonce: str | None = None,
    ):
        form = {"player_id": str(player.id), "session_id": token, "currency": "EUR",
                "game_uuid": "sg-slot", **params}  # fmt: skip
        form = {k: v for k, v in form.items() if v is not None}
        headers = {
            "X-Merchant-Id": "merchant-1",
            "X-Timestamp": str(int(time.time()) if timestamp is None else timestamp),
            "X-Nonce": nonce or secrets.token_hex(8),
        }
        if sign:
            headers["X-Sign"] = slotegrator_signature(secret, form, headers)
        response = client.post(f"/api/provider-callback/{provider.code}", data=form,
                               headers=headers)  # fmt: skip
        assert response.status_code == 200
        return response.get_json()

    return call, player, provider


def _bet(tx: str, amount: str, round_id: str = "R1", **extra: Any) -> dict[str, Any]:
    return {"action": "bet", "transaction_id": tx, "round_id": round_id, "amount": amount,
            **extra}  # fmt: skip


def test_the_signature_is_hmac_sha1_of_the_sorted_params_and_headers_as_a_query_string():
    params = {"b": "x y", "a": "1"}
    headers = {"X-Merchant-Id": "m", "X-Timestamp": "1700000000", "X-Nonce": "n&1"}
    text = "X-Merchant-Id=m&X-Nonce=n%261&X-Timestamp=1700000000&a=1&b=x+y"
    expected = hmac.new(b"s3", text.encode(), hashlib.sha1).hexdigest()
    assert slotegrator_signature("s3", params, headers) == expected


def test_balance_answers_the_playable_balance_in_major_units(gis):
    call, _player, _provider = gis
    assert call({"action": "balance", "game_uuid": None}) == {"balance": 100.0}


def test_a_bet_a_win_and_their_exact_retries_move_money_once(gis):
    call, _player, _provider = gis
    bet = call(_bet("t1", "2.50"))
    assert bet["balance"] == 97.5
    assert bet["transaction_id"]
    assert call(_bet("t1", "2.50")) == bet
    win = call({"action": "win", "transaction_id": "t1w", "round_id": "R1", "amount": "10.00"})
    assert win["balance"] == 107.5
    assert call({"action": "win", "transaction_id": "t1w", "round_id": "R1",
                 "amount": "10.00"}) == win  # fmt: skip
    reconcile_clean()


def test_the_same_transaction_id_with_another_amount_is_a_duplicate(gis):
    call, _player, _provider = gis
    call(_bet("t2", "1.00"))
    answer = call(_bet("t2", "2.00"))
    assert answer["error_code"] == "DUPLICATE_TRANSACTION"
    assert call({"action": "balance"})["balance"] == 99.0


@pytest.mark.parametrize("action", ["refund", "rollback"])
def test_a_refund_or_rollback_gives_the_stored_stake_back_once(gis, action):
    call, _player, _provider = gis
    call(_bet("t3", "4.00"))
    undo = {"action": action, "transaction_id": "t3x", "bet_transaction_id": "t3", "round_id": "R1"}
    assert call(undo)["balance"] == 100.0
    assert call({**undo, "transaction_id": "t3y"})["balance"] == 100.0
    reconcile_clean()


def test_nested_list_fields_are_signed_in_their_sent_order_under_the_sorted_top_level():
    params = {"z": "1", "rt[0][b]": "2", "rt[0][a]": "3", "a": "4"}
    headers = {"X-Merchant-Id": "m", "X-Timestamp": "1700000000", "X-Nonce": "n"}
    text = ("X-Merchant-Id=m&X-Nonce=n&X-Timestamp=1700000000&a=4"
            "&rt%5B0%5D%5Bb%5D=2&rt%5B0%5D%5Ba%5D=3&z=1")  # fmt: skip
    expected = hmac.new(b"s3", text.encode(), hashlib.sha1).hexdigest()
    assert slotegrator_signature("s3", params, headers) == expected


def _listed(tx: str, *items: tuple[str, str, str], round_id: str = "R1") -> dict[str, Any]:
    form: dict[str, Any] = {"action": "rollback", "type": "rollback", "transaction_id": tx,
                            "round_id": round_id, "provider_round_id": round_id}  # fmt: skip
    for i, (action, target, amount) in enumerate(items):
        form.update({f"rollback_transactions[{i}][action]": action,
                     f"rollback_transactions[{i}][amount]": amount,
                     f"rollback_transactions[{i}][transaction_id]": target,
                     f"rollback_transactions[{i}][type]": action})  # fmt: skip
    return form


def test_a_rollback_undoes_every_listed_transaction_once(gis):
    call, _player, _provider = gis
    call(_bet("rb1", "3.00"))
    call({"action": "win", "transaction_id": "rw1", "round_id": "R1", "amount": "5.00"})
    assert call({"action": "balance"})["balance"] == 102.0
    undo = _listed("x1", ("bet", "rb1", "3.00"), ("win", "rw1", "5.00"))
    answer = call(undo)
    assert (answer["balance"], answer["rollback_transactions"]) == (100.0, ["rb1", "rw1"])
    assert answer["transaction_id"]
    assert call(undo) == answer
    assert call({"action": "balance"})["balance"] == 100.0
    # Each listed transaction is undone once, whatever rollback names it again.
    assert call(_listed("x1b", ("bet", "rb1", "3.00")))["balance"] == 100.0
    reconcile_clean()


def test_a_rollback_of_a_transaction_never_seen_refuses_it_later(gis):
    call, _player, _provider = gis
    answer = call(_listed("x2", ("bet", "rb2", "1.00")))
    assert (answer["balance"], answer["rollback_transactions"]) == (100.0, ["rb2"])
    assert call(_bet("rb2", "1.00"))["error_code"] == "DUPLICATE_TRANSACTION"
    assert call({"action": "balance"})["balance"] == 100.0


def test_a_refunded_bet_rolled_back_with_its_refund_moves_nothing_more(gis):
    call, _player, _provider = gis
    call(_bet("rb3", "2.00"))
    refund = {"action": "refund", "transaction_id": "rf3", "bet_transaction_id": "rb3",
              "round_id": "R1"}  # fmt: skip
    assert call(refund)["balance"] == 100.0
    answer = call(_listed("x3", ("bet", "rb3", "2.00"), ("refund", "rf3", "2.00")))
    assert (answer["balance"], answer["rollback_transactions"]) == (100.0, ["rb3", "rf3"])
    assert call(_listed("x3b", ("refund", "rf3", "2.00")))["error_code"] == "VALIDATION_ERROR"
    reconcile_clean()


def test_a_rollback_that_cannot_apply_moves_nothing(gis):
    call, _player, _provider = gis
    call(_bet("rb4", "1.00"))
    other = call({**_bet("rb5", "1.00", round_id="R5")})
    assert other["balance"] == 98.0
    # One of the two is in another round: neither is undone.
    refused = call(_listed("x4", ("bet", "rb4", "1.00"), ("bet", "rb5", "1.00")))
    assert refused["error_code"] == "TRANSACTION_NOT_FOUND"
    assert call({"action": "balance"})["balance"] == 98.0
    twice = call(_listed("x5", ("bet", "rb4", "1.00"), ("win", "rb4", "1.00")))
    assert twice["error_code"] == "DUPLICATE_TRANSACTION"
    assert call(_listed("", ("bet", "rb4", "1.00")))["error_code"] == "VALIDATION_ERROR"
    assert call({"action": "balance"})["balance"] == 98.0


def test_insufficient_funds_carries_the_balance(gis):
    call, _player, _provider = gis
    answer = call(_bet("t4", "500.00"))
    assert answer["error_code"] == "INSUFFICIENT_FUNDS"
    assert answer["balance"] == 100.0
    assert answer["error_description"]


def test_a_bad_or_missing_signature_is_refused_and_moves_nothing(gis):
    call, _player, _provider = gis
    assert call(_bet("t5", "1.00"), secret="other")["error_code"] == "INVALID_SIGNATURE"
    assert call(_bet("t5", "1.00"), sign=False)["error_code"] == "INVALID_SIGNATURE"
    assert call({"action": "balance"})["balance"] == 100.0


@pytest.mark.parametrize("skew", [-301, 400, 10**12])
def test_a_timestamp_outside_five_minutes_is_refused(gis, skew):
    call, _player, _provider = gis
    answer = call(_bet("t6", "1.00"), timestamp=int(time.time()) + skew)
    assert answer["error_code"] == "REQUEST_EXPIRED"
    assert call({"action": "balance"})["balance"] == 100.0


def test_a_timestamp_within_the_window_is_accepted(gis):
    call, _player, _provider = gis
    assert call({"action": "balance"}, timestamp=int(time.time()) - 280) == {"balance": 100.0}


def test_a_nonce_is_accepted_once_and_kept_in_postgres(gis):
    call, _player, provider = gis
    assert call({"action": "balance"}, nonce="n-1") == {"balance": 100.0}
    again = call(_bet("t7", "1.00"), nonce="n-1")
    assert again["error_code"] == "NONCE_REUSED"
    assert call({"action": "balance"})["balance"] == 100.0
    kept = db.session.scalar(
        select(func.count())
        .select_from(ProviderNonce)
        .where(ProviderNonce.provider_id == provider.id, ProviderNonce.nonce == "n-1")
    )
    assert kept == 1


def test_unknown_actions_and_unknown_games_are_refused(gis):
    call, _player, _provider = gis
    assert call({"action": "jackpot"})["error_code"] == "VALIDATION_ERROR"
    assert call(_bet("t8", "1.00", game_uuid="nope"))["error_code"] == "GAME_NOT_FOUND"
    assert call(_bet("t8b", "1.001"))["error_code"] == "VALIDATION_ERROR"
    assert call(_bet("t8c", "1.00", currency="USD"))["error_code"] == "VALIDATION_ERROR"


def test_an_outage_answers_the_retryable_internal_error(gis, monkeypatch):
    call, _player, _provider = gis
    from app.play.callbacks import actions

    def down(*_args, **_kwargs):
        raise ConnectionRefusedError("database down")

    monkeypatch.setitem(actions._HANDLERS, "bet", down)
    assert call(_bet("t9", "1.00"))["error_code"] == "INTERNAL_ERROR"
    monkeypatch.undo()
    assert call(_bet("t9", "1.00"))["balance"] == 99.0


def test_a_logged_bet_replays_to_its_first_answer(gis):
    call, _player, _provider = gis
    first = call(_bet("t10", "3.00"))
    row = db.session.scalars(select(ProviderCallback).where(ProviderCallback.action == "bet")).one()
    _row, result = replay.replay(row.id)
    assert (result.ok, result.duplicate, result.transaction_id) == (
        True, True, first["transaction_id"],
    )  # fmt: skip
    assert call({"action": "balance"})["balance"] == 97.0


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        ("INSUFFICIENT_FUNDS", None, "INSUFFICIENT_FUNDS"),
        ("INTERNAL_ERROR", None, "INTERNAL_ERROR"),
        ("DUPLICATE_MISMATCH", None, "DUPLICATE_TRANSACTION"),
        ("ROUND_NOT_FOUND", None, "TRANSACTION_NOT_FOUND"),
        ("INVALID_SIGNATURE", None, "INVALID_SIGNATURE"),
        ("INVALID_SIGNATURE", "stale", "REQUEST_EXPIRED"),
        ("INVALID_SIGNATURE", "nonce", "NONCE_REUSED"),
        ("FREE_ROUND_REFUSED", None, "UNKNOWN_ERROR"),
    ],
)
def test_our_codes_map_to_slotegrator_codes(code, reason, expected):
    assert error_code_of(CallbackResult("error", code=code, reason=reason)) == expected
