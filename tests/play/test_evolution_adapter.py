"""The Evolution One Wallet-style adapter: the query's authToken, check/balance/debit/credit/
cancel, decimal amounts, uuid echo and the statuses, through the Flask test client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.play import games
from app.play.callbacks.adapters.evolution import status_of
from app.play.callbacks.protocol import CallbackResult
from app.play.models import ProviderTransaction
from tests.moneykit import SECRET, fund, make_game, make_provider, reconcile_clean


@pytest.fixture
def evo(client, factory):
    provider = make_provider("evo", protocol="evolution")
    game = make_game("evo", "evo-table")
    player = factory.player()
    fund(player.id, 100_00)
    token = games.launch(player, game.id).session_token

    def call(path: str, body: dict[str, Any] | None = None, *, auth: str | None = SECRET):
        data = {"sid": token, "userId": str(player.id), "currency": "EUR", "uuid": "u-1",
                **(body or {})}  # fmt: skip
        url = f"/api/provider-callback/{provider.code}/{path}"
        query = {"authToken": auth} if auth is not None else {}
        response = client.post(url, query_string=query, data=json.dumps(data),
                               content_type="application/json")  # fmt: skip
        assert response.status_code == 200
        return response.get_json()

    return call, player, token


def _tx(tx_id: str, amount: str | None, ref: str | None = None, round_id: str = "G1"):
    transaction: dict[str, Any] = {"id": tx_id, "refId": ref or tx_id}
    if amount is not None:
        transaction["amount"] = amount
    game = {"id": round_id, "type": "blackjack", "details": {"table": {"id": "evo-table"}}}
    return {"game": game, "transaction": transaction}


def test_check_echoes_sid_and_uuid(evo):
    call, _player, token = evo
    assert call("check") == {"status": "OK", "sid": token, "uuid": "u-1", "balance": 100.0,
                             "bonus": 0.0}  # fmt: skip


def test_a_wrong_or_missing_auth_token_is_invalid_token_id(evo):
    call, _player, _token = evo
    assert call("debit", _tx("d0", "1.00"), auth="nope")["status"] == "INVALID_TOKEN_ID"
    assert call("debit", _tx("d0", "1.00"), auth=None)["status"] == "INVALID_TOKEN_ID"
    assert call("debit", _tx("d0", "1.00"), auth=SECRET + "x")["status"] == "INVALID_TOKEN_ID"
    assert call("balance")["balance"] == 100.0


def test_debit_credit_and_exact_retries_move_money_once(evo):
    call, _player, _token = evo
    debit = call("debit", _tx("d1", "2.50"))
    assert (debit["status"], debit["balance"]) == ("OK", 97.5)
    assert call("debit", _tx("d1", "2.50")) == debit
    credit = call("credit", _tx("c1", "10.00", ref="d1"))
    assert (credit["status"], credit["balance"]) == ("OK", 107.5)
    assert call("credit", _tx("c1", "10.00", ref="d1")) == credit
    # The credit settled the round.
    assert call("debit", _tx("d1b", "1.00"))["status"] == "BET_ALREADY_SETTLED"
    reconcile_clean()


def test_codes_for_duplicates_unknown_bets_and_missing_funds(evo):
    call, _player, _token = evo
    call("debit", _tx("d2", "1.00"))
    assert call("debit", _tx("d2", "2.00"))["status"] == "BET_ALREADY_EXIST"
    assert call("credit", _tx("c2", "1.00", round_id="nope"))["status"] == "BET_DOES_NOT_EXIST"
    poor = call("debit", _tx("d3", "500.00", round_id="G3"))
    assert (poor["status"], poor["balance"], poor["uuid"]) == ("INSUFFICIENT_FUNDS", 99.0, "u-1")
    assert call("debit", _tx("d4", "1.001", round_id="G4"))["status"] == "INVALID_PARAMETER"
    assert call("debit", {"sid": "nope", **_tx("d5", "1.00", round_id="G5")})["status"] == (
        "INVALID_SID"
    )


def test_cancel_gives_the_stored_stake_back_once(evo):
    call, _player, _token = evo
    call("debit", _tx("D6", "4.00", ref="6", round_id="G6"))
    # The cancel carries the debit's own transaction.id (as the public descriptions show).
    first = call("cancel", _tx("D6", "4.00", ref="6", round_id="G6"))
    assert first["balance"] == 100.0
    assert call("cancel", _tx("D6", "4.00", ref="6", round_id="G6")) == first
    # The amount only checks: another than the debit's is refused.
    call("debit", _tx("D6b", "3.00", ref="6b", round_id="G6b"))
    assert call("cancel", _tx("D6b", "1.00", ref="6b", round_id="G6b"))["status"] == (
        "INVALID_PARAMETER")  # fmt: skip
    assert call("cancel", _tx("D6c", None, ref="6c", round_id="G6c"))["status"] == "OK"
    assert call("balance")["balance"] == 97.0
    reconcile_clean()


def test_a_credit_settles_its_debit_through_the_shared_round_not_an_id(evo):
    call, _player, _token = evo
    # D/C ids with one refId, as Evolution sends them: the credit's refId is no debit's id.
    call("debit", _tx("D7", "2.00", ref="7", round_id="G7"))
    credit = call("credit", _tx("C7", "5.00", ref="7", round_id="G7"))
    assert (credit["status"], credit["balance"]) == ("OK", 103.0)
    assert call("credit", _tx("C8", "5.00", ref="8", round_id="G8"))["status"] == (
        "BET_DOES_NOT_EXIST")  # fmt: skip
    # A cancel before its debit: the late debit is refused.
    assert call("cancel", _tx("D9", None, ref="9", round_id="G9"))["status"] == "OK"
    assert call("debit", _tx("D9", "1.00", ref="9", round_id="G9"))["status"] == (
        "BET_ALREADY_EXIST")  # fmt: skip
    assert call("balance")["balance"] == 103.0
    reconcile_clean()


def _promo(promo_id: str, amount: Any, **extra: Any) -> dict[str, Any]:
    game = {"id": None, "type": "blackjack", "details": {"table": {"id": "evo-table"}}}
    return {
        "game": game,
        "promoTransaction": {"type": "JackpotWin", "id": promo_id, "amount": amount, **extra},
    }


def test_a_promo_payout_is_credited_once_and_linked_to_its_promotion(evo):
    call, player, _token = evo
    jackpots = [{"id": "444041xyz", "winAmount": 30.0}, {"id": "555739abc", "winAmount": 5.5}]
    paid = call("promo_payout", _promo("p1", 35.5, jackpots=jackpots))
    assert (paid["status"], paid["balance"], paid["uuid"]) == ("OK", 135.5, "u-1")
    assert call("promo_payout", _promo("p1", 35.5, jackpots=jackpots)) == paid
    assert call("promo_payout", _promo("p1", 36.0, jackpots=jackpots))["status"] == (
        "BET_ALREADY_EXIST")  # fmt: skip
    assert call("balance")["balance"] == 135.5
    row = db.session.scalars(
        select(ProviderTransaction).where(ProviderTransaction.external_id == "p1")
    ).one()
    assert (row.action, row.user_id, row.amount) == ("promo_win", player.id, 35_50)
    assert row.reference_external_id == "promo:JackpotWin:444041xyz,555739abc"
    reconcile_clean()


def test_a_bad_promo_payout_is_refused_and_moves_nothing(evo):
    call, _player, _token = evo
    assert call("promo_payout", _promo("p2", 0))["status"] == "INVALID_PARAMETER"
    assert call("promo_payout", _promo("p3", -1))["status"] == "INVALID_PARAMETER"
    assert call("promo_payout", {"promoTransaction": "x"})["status"] == "INVALID_PARAMETER"
    no_type = _promo("p4", 1)
    del no_type["promoTransaction"]["type"]
    assert call("promo_payout", no_type)["status"] == "INVALID_PARAMETER"
    assert call("promo_payout", {**_promo("p5", 1), "currency": "USD"})["status"] == (
        "INVALID_PARAMETER")  # fmt: skip
    assert call("promo_payout", _promo("p6", 1), auth="nope")["status"] == "INVALID_TOKEN_ID"
    assert call("balance")["balance"] == 100.0


def test_an_outage_is_a_temporary_error(evo, monkeypatch):
    call, _player, _token = evo
    from app.play.callbacks import actions

    def down(*_args, **_kwargs):
        raise ConnectionRefusedError("database down")

    monkeypatch.setitem(actions._HANDLERS, "bet", down)
    assert call("debit", _tx("d7", "1.00", round_id="G7"))["status"] == "TEMPORARY_ERROR"
    monkeypatch.undo()
    assert call("debit", _tx("d7", "1.00", round_id="G7"))["balance"] == 99.0


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("INSUFFICIENT_FUNDS", "INSUFFICIENT_FUNDS"),
        ("INTERNAL_ERROR", "TEMPORARY_ERROR"),
        ("INVALID_SIGNATURE", "INVALID_TOKEN_ID"),
        ("INVALID_SESSION", "INVALID_SID"),
        ("PLAYER_BLOCKED", "ACCOUNT_LOCKED"),
        ("DUPLICATE_MISMATCH", "BET_ALREADY_EXIST"),
        ("TRANSACTION_NOT_FOUND", "BET_DOES_NOT_EXIST"),
        ("ROUND_CLOSED", "BET_ALREADY_SETTLED"),
        ("VALIDATION_ERROR", "INVALID_PARAMETER"),
        ("LIMIT_EXCEEDED", "FINAL_ERROR_ACTION_FAILED"),
        ("FREE_ROUND_REFUSED", "UNKNOWN_ERROR"),
    ],
)
def test_our_codes_map_to_evolution_statuses(code, expected):
    assert status_of(CallbackResult("error", code=code)) == expected
