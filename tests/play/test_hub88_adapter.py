"""The Hub88 wallet API adapter: Hub88's public signature vectors, amount conversion, the
status mapping, and full rounds through the Flask test client."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.core.base import utcnow
from app.core.crypto import generate_rsa_private_key, rsa_public_pem, rsa_sign, rsa_verify
from app.core.extensions import db
from app.play import games
from app.play.callbacks import protocol as callback_protocol
from app.play.callbacks import replay
from app.play.callbacks.adapters.hub88 import (
    SIGNATURE_HEADER,
    major_to_units,
    minor_to_units,
    status_of,
    units_to_major,
)
from app.play.callbacks.protocol import CallbackError, CallbackResult
from app.play.models import GameSession, ProviderCallback
from tests.moneykit import fund, make_game, reconcile_clean

VECTORS = json.loads((Path(__file__).parent / "data" / "hub88_signature_vectors.json").read_text())


# --- signatures: Hub88's published vectors -----------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["data"][:20])
def test_our_signature_is_hub88s_for_their_example_key(vector):
    data = vector["data"].encode()
    assert rsa_sign(VECTORS["private_key"], data) == vector["signature"]
    assert rsa_verify(VECTORS["public_key"], data, vector["signature"])


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["data"][:20])
def test_a_vector_signature_does_not_verify_other_bytes(vector):
    assert not rsa_verify(
        VECTORS["public_key"], vector["data"].encode() + b" ", vector["signature"]
    )


def test_a_signature_that_is_not_base64_does_not_verify():
    assert not rsa_verify(VECTORS["public_key"], b"test", "not base64 at all!")


# --- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "major"),
    [(100_000, Decimal("1")), (250, Decimal("0.0025")), (0, Decimal(0)), (-100_000, Decimal(-1))],
)
def test_hub88_units_are_hundred_thousandths(units, major):
    assert units_to_major(units) == major


@pytest.mark.parametrize("value", [1.0, "100000", True, None, [100000]])
def test_a_hub88_amount_must_be_an_integer(value):
    with pytest.raises(CallbackError) as err:
        units_to_major(value)
    assert err.value.code == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("minor", "currency", "units"),
    [
        (150, "EUR", 150_000),
        (7, "JPY", 700_000),
        (1234, "KWD", 123_400),
        (123_456_789, "BTC", 123_456),
    ],
)
def test_balances_go_out_in_hub88_units_floored_where_ours_are_finer(minor, currency, units):
    assert minor_to_units(minor, currency) == units


def test_major_to_units_refuses_what_hub88_cannot_say():
    assert major_to_units("2.50") == 250_000
    with pytest.raises(ValueError, match="finer"):
        major_to_units("0.000001")


# --- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "path", "status"),
    [
        ("INSUFFICIENT_FUNDS", None, "transaction/bet", "RS_ERROR_NOT_ENOUGH_MONEY"),
        ("PLAYER_BLOCKED", None, "transaction/bet", "RS_ERROR_USER_DISABLED"),
        ("LIMIT_EXCEEDED", None, "transaction/bet", "RS_ERROR_LIMIT_REACHED"),
        ("DUPLICATE_MISMATCH", None, "transaction/bet", "RS_ERROR_DUPLICATE_TRANSACTION"),
        ("INVALID_SIGNATURE", None, "user/info", "RS_ERROR_INVALID_SIGNATURE"),
        ("INVALID_SESSION", None, "user/balance", "RS_ERROR_INVALID_TOKEN"),
        ("INVALID_SESSION", "expired", "user/balance", "RS_ERROR_TOKEN_EXPIRED"),
        ("VALIDATION_ERROR", None, "transaction/bet", "RS_ERROR_WRONG_TYPES"),
        ("VALIDATION_ERROR", "currency", "transaction/bet", "RS_ERROR_WRONG_CURRENCY"),
        ("GAME_NOT_FOUND", None, "transaction/bet", "RS_ERROR_INVALID_GAME"),
        ("TRANSACTION_NOT_FOUND", None, "transaction/win", "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"),
        ("ROUND_NOT_FOUND", None, "transaction/win", "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"),
        ("ROUND_NOT_FOUND", None, "transaction/bet", "RS_ERROR_UNKNOWN"),
        ("ROUND_CLOSED", None, "transaction/bet", "RS_ERROR_UNKNOWN"),
        ("INTERNAL_ERROR", None, "transaction/win", "RS_ERROR_UNKNOWN"),
    ],
)
def test_our_codes_map_to_hub88_statuses(code, reason, path, status):
    assert status_of(CallbackResult("error", code=code, reason=reason), path) == status


def test_a_rollback_of_an_unseen_bet_is_does_not_exist():
    result = CallbackResult("ok", reference_unknown=True)
    assert status_of(result, "transaction/rollback") == "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
    assert status_of(CallbackResult("ok"), "transaction/rollback") == "RS_OK"


# --- through the HTTP door -------------------------------------------------------------------

AGGREGATOR_KEY = generate_rsa_private_key()


class Hub88:
    def __init__(self, client, code: str, user_id: int, token: str, answer_key: str) -> None:
        self.client, self.code, self.user, self.token = client, code, str(user_id), token
        self.answer_key = answer_key
        self.last_raw = b""

    def post(self, path: str, fields: dict[str, Any], *, key: str = AGGREGATOR_KEY, body=None):
        payload = {"user": self.user, "request_uuid": str(uuid.uuid4()), **fields}
        data = body if body is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: rsa_sign(key, data)}
        response = self.client.post(
            f"/api/provider-callback/{self.code}/{path}", data=data, headers=headers
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        self.last_raw = response.get_data()
        assert rsa_verify(self.answer_key, self.last_raw, response.headers[SIGNATURE_HEADER])
        return response.get_json()

    def money(self, path: str, tx: str, round_id: str, amount: Any = None, **kw: Any):
        fields = {
            "token": self.token,
            "game_code": "hub-slot",
            "transaction_uuid": tx,
            "round": round_id,
            "currency": "EUR",
            **kw,
        }
        if amount is not None:
            fields["amount"] = amount
        return self.post(f"transaction/{path}", fields)

    def balance(self) -> int:
        answer = self.post("user/balance", {"token": self.token, "game_code": "hub-slot"})
        assert answer["status"] == "RS_OK", answer
        return answer["balance"]


@pytest.fixture
def hub(client, factory):
    callback_protocol.clear_caches()
    provider = games.create_provider(
        code="hub88", name="Hub88", protocol="hub88", currencies=["EUR"],
        peer_public_key=rsa_public_pem(AGGREGATOR_KEY),
    )  # fmt: skip
    make_game(provider.code, "hub-slot")
    player = factory.player()
    fund(player.id, 100_00)
    game_id = db.session.scalar(
        db.select(games.Game.id).where(games.Game.external_id == "hub-slot")
    )
    token = games.launch(player, game_id).session_token
    return Hub88(client, provider.code, player.id, token, games.provider_public_key("hub88"))


def test_a_full_round_over_hub88(hub):
    info = hub.post("user/info", {})
    assert (info["status"], info["user"]) == ("RS_OK", hub.user)
    assert hub.balance() == 10_000_000
    bet = hub.money("bet", "b1", "R1", 250_000)
    assert (bet["status"], bet["balance"], bet["currency"]) == ("RS_OK", 9_750_000, "EUR")
    retry = hub.money("bet", "b1", "R1", 250_000)
    assert {**retry, "request_uuid": ""} == {**bet, "request_uuid": ""}
    win = hub.money(
        "win", "w1", "R1", 1_000_000, reference_transaction_uuid="b1", round_closed=True
    )
    assert (win["status"], win["balance"]) == ("RS_OK", 10_750_000)
    late = hub.money("bet", "b2", "R1", 100_000)
    assert late["status"] == "RS_ERROR_UNKNOWN"
    reconcile_clean()


def test_a_rollback_gives_the_bet_back_once_and_an_unseen_bet_never_lands(hub):
    hub.money("bet", "b1", "R1", 500_000)
    first = hub.money("rollback", "x1", "R1", reference_transaction_uuid="b1")
    assert (first["status"], first["balance"]) == ("RS_OK", 10_000_000)
    assert (
        hub.money("rollback", "x2", "R1", reference_transaction_uuid="b1")["balance"] == 10_000_000
    )
    ghost = hub.money("rollback", "x3", "R2", reference_transaction_uuid="ghost")
    assert (ghost["status"], ghost["balance"]) == (
        "RS_ERROR_TRANSACTION_DOES_NOT_EXIST",
        10_000_000,
    )
    again = hub.money("rollback", "x3", "R2", reference_transaction_uuid="ghost")
    assert again["status"] == "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
    assert hub.money("bet", "ghost", "R2", 100_000)["status"] == "RS_ERROR_DUPLICATE_TRANSACTION"
    assert hub.balance() == 10_000_000


def test_a_win_naming_an_unknown_bet_does_not_exist(hub):
    hub.money("bet", "b1", "R1", 100_000)
    answer = hub.money("win", "w1", "R1", 100_000, reference_transaction_uuid="nope")
    assert answer["status"] == "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
    assert hub.balance() == 9_900_000


def test_refusals_carry_hub88_statuses(hub):
    poor = hub.money("bet", "b1", "R1", 1_000_000_000)
    assert (poor["status"], poor["balance"]) == ("RS_ERROR_NOT_ENOUGH_MONEY", 10_000_000)
    assert hub.money("bet", "b2", "R1", 150)["status"] == "RS_ERROR_WRONG_TYPES"
    assert hub.money("bet", "b3", "R1", "1000")["status"] == "RS_ERROR_WRONG_TYPES"
    assert hub.money("bet", "b4", "R1", 100_000, currency="USD")["status"] == (
        "RS_ERROR_WRONG_CURRENCY"
    )
    assert hub.money("bet", "b5", "R1", 100_000, game_code="nope")["status"] == (
        "RS_ERROR_INVALID_GAME"
    )
    assert hub.money("bet", "b6", "R1", 100_000, token="nope")["status"] == (
        "RS_ERROR_INVALID_TOKEN"
    )
    hub.money("bet", "b7", "R1", 100_000)
    assert hub.money("bet", "b7", "R1", 200_000)["status"] == "RS_ERROR_DUPLICATE_TRANSACTION"
    assert hub.balance() == 9_900_000


def test_a_forged_signature_is_refused_and_the_refusal_is_signed(hub):
    answer = hub.post("user/balance", {"token": hub.token}, key=generate_rsa_private_key())
    assert answer["status"] == "RS_ERROR_INVALID_SIGNATURE"
    assert "balance" not in answer
    row = db.session.scalars(
        db.select(ProviderCallback).order_by(ProviderCallback.id.desc())
    ).first()
    assert (row.verdict, row.signature_valid) == ("INVALID_SIGNATURE", False)


def test_an_expired_token_may_settle_but_not_bet(hub):
    hub.money("bet", "b1", "R1", 100_000)
    db.session.execute(
        db.update(GameSession)
        .where(GameSession.token == hub.token)
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )
    assert hub.money("bet", "b2", "R1", 100_000)["status"] == "RS_ERROR_TOKEN_EXPIRED"
    win = hub.money("win", "w1", "R1", 300_000, reference_transaction_uuid="b1")
    assert (win["status"], win["balance"]) == ("RS_OK", 10_200_000)


def test_a_logged_hub88_callback_replays_to_the_same_answer(hub):
    hub.money("bet", "b1", "R1", 100_000)
    row = db.session.scalars(
        db.select(ProviderCallback).where(ProviderCallback.transaction_id == "b1")
    ).one()
    _row, result = replay.replay(row.id)
    assert (result.ok, result.duplicate, result.balance) == (True, True, 99_00)


def test_staff_register_a_hub88_aggregator_through_the_admin_api(client, factory, token_for):
    h = token_for(factory.staff("admin"))
    theirs = rsa_public_pem(generate_rsa_private_key())
    created = client.post(
        "/api/admin/games/providers",
        json={"code": "hubapi", "name": "Hub88", "protocol": "hub88", "public_key": theirs,
              "api_url": "https://api.hub88.example/v2"},
        headers=h,
    )  # fmt: skip
    assert created.status_code == 201, created.get_json()
    data = created.get_json()["data"]
    assert (data["protocol"], data["api_url"]) == ("hub88", "https://api.hub88.example/v2")
    assert "private" not in str(data).lower()
    assert "BEGIN PUBLIC KEY" in games.provider_public_key("hubapi")
    no_key = client.post(
        "/api/admin/games/providers",
        json={"code": "hubnokey", "name": "Hub88", "protocol": "hub88"},
        headers=h,
    )
    assert no_key.status_code == 400
    native_without_secret = client.post(
        "/api/admin/games/providers", json={"code": "nosecret", "name": "N"}, headers=h
    )
    assert native_without_secret.status_code == 400
