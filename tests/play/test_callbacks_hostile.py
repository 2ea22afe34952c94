"""Callbacks a flaky, buggy or hostile provider sends: every one gets a final, correct answer
(never "retry" for what no retry can fix), and nothing moves that should not."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from app.core.extensions import db
from app.play.callbacks import replay
from app.play.models import GameRound, ProviderCallback, ProviderTransaction
from tests.moneykit import Table, open_table, reconcile_clean


@pytest.fixture
def table(client, factory) -> Table:
    return open_table(client, factory)


def _last_log() -> ProviderCallback:
    return db.session.scalars(
        sa.select(ProviderCallback).order_by(ProviderCallback.id.desc())
    ).first()


@pytest.mark.parametrize(
    ("amount", "why"),
    [
        ("1e5000", "too large"),
        ("1E+999999999", "too large"),
        ("1e-999999999", "decimal places"),
        ("0.001", "decimal places"),
        ("-5", "negative"),
        ("abc", "decimal number"),
        ("1" * 70, "too long"),
        ("NaN", "finite"),
        (True, "number"),
    ],
)
def test_an_absurd_amount_is_a_final_validation_error_and_moves_nothing(table, amount, why):
    answer = table.bet("t1", amount)
    assert answer["status"] == "error"
    assert answer["code"] == "VALIDATION_ERROR", answer
    assert why in answer["message"]
    assert table.balances() == (100_00, 0)
    assert db.session.scalar(sa.select(sa.func.count(ProviderTransaction.id))) == 0


def test_a_json_number_amount_in_exponent_form_is_parsed_exactly(table):
    body = (
        b'{"action": "bet", "session_token": "%s", "game_id": "%s", "currency": "EUR",'
        b' "transaction_id": "t1", "round_id": "r1", "amount": 2.5e0}'
        % (table.token.encode(), table.game_external.encode())
    )
    assert table.raw(body).get_json()["balance"] == "97.50"


def test_a_numeric_transaction_id_retried_gets_the_first_answer(table):
    """A JSON number as transaction id used to fail every retry with INTERNAL_ERROR (the
    replay lookup compared the text column with an integer on PostgreSQL)."""
    first = table.call("bet", transaction_id=7001, round_id=42, amount="1.00")
    assert first["status"] == "ok"
    again = table.call("bet", transaction_id=7001, round_id=42, amount="1.00")
    assert again == first
    as_text = table.call("bet", transaction_id="7001", round_id="42", amount="1.00")
    assert as_text == first
    win = table.call("win", transaction_id=7002, round_id=42, amount="3.00")
    assert win["balance"] == "102.00"
    assert table.call("win", transaction_id=7002, round_id=42, amount="3.00") == win
    assert table.balances() == (102_00, 0)
    reconcile_clean()


def test_a_signed_body_naming_a_key_twice_is_refused(table):
    body = (
        b'{"action": "bet", "session_token": "%s", "game_id": "%s", "currency": "EUR",'
        b' "transaction_id": "t1", "round_id": "r1", "amount": "1.00", "amount": "90.00"}'
        % (table.token.encode(), table.game_external.encode())
    )
    answer = table.raw(body).get_json()
    assert answer["code"] == "VALIDATION_ERROR"
    assert "twice" in answer["message"]
    assert table.balances() == (100_00, 0)


def test_deeply_nested_json_is_refused_without_a_server_error(table):
    deep = b'{"action": "bet", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    table.client.application.config["CALLBACK_MAX_BODY_BYTES"] = 1_000_000
    try:
        signed = table.raw(deep)
        unsigned = table.raw(deep, signature="00")
    finally:
        table.client.application.config["CALLBACK_MAX_BODY_BYTES"] = 16 * 1024
    assert signed.status_code == 200
    assert signed.get_json()["code"] == "VALIDATION_ERROR"
    assert "nested deeper" in signed.get_json()["message"]
    assert unsigned.get_json()["code"] == "INVALID_SIGNATURE"
    assert table.balances() == (100_00, 0)


def test_a_body_over_the_callback_limit_is_413_before_any_parsing(table):
    huge = b'{"action": "bet", "pad": "' + b"x" * 20_000 + b'"}'
    before = db.session.scalar(sa.select(sa.func.count(ProviderCallback.id)))
    response = table.raw(huge)
    assert response.status_code == 413
    assert response.get_json()["code"] == "PAYLOAD_TOO_LARGE"
    assert db.session.scalar(sa.select(sa.func.count(ProviderCallback.id))) == before


def test_an_unsigned_body_is_logged_by_its_start_and_size_only(table):
    body = json.dumps({"action": "bet", "pad": "y" * 12_000}).encode()
    answer = table.raw(body, signature="bad").get_json()
    assert answer["code"] == "INVALID_SIGNATURE"
    logged = _last_log()
    assert logged.signature_valid is False
    assert logged.payload["_bytes"] == len(body)
    assert len(logged.payload["_raw"]) == 2000


def test_replaying_a_refused_bet_gives_the_refusal_again_and_never_charges(table):
    """The provider took INSUFFICIENT_FUNDS as final: the bet was never placed. Replaying the
    logged callback later (when the player has money) must not place it."""
    refused = table.bet("t1", "150.00")
    assert refused["code"] == "INSUFFICIENT_FUNDS"
    row = _last_log()
    assert row.verdict == "INSUFFICIENT_FUNDS"
    from tests.moneykit import fund

    fund(table.user_id, cash=100_00)
    logged = db.session.scalar(sa.select(sa.func.count(ProviderCallback.id)))
    _row, result = replay.replay(row.id)
    assert not result.ok
    assert result.code == "INSUFFICIENT_FUNDS"
    assert table.balances() == (200_00, 0)
    assert db.session.scalar(sa.select(sa.func.count(GameRound.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(ProviderTransaction.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(ProviderCallback.id))) == logged
    reconcile_clean()


def test_replaying_a_retryable_failure_applies_it_once(table, app):
    """INTERNAL_ERROR means "nothing happened, send again": that one replay runs."""
    from app.play.callbacks import adapters
    from app.play.callbacks import log as callback_log
    from app.play.callbacks.protocol import CallbackResult, provider_config

    provider = provider_config(table.provider_code)
    assert provider is not None
    payload = {
        "action": "bet",
        "session_token": table.token,
        "game_id": table.game_external,
        "currency": "EUR",
        "transaction_id": "t9",
        "round_id": "r1",
        "amount": "4.00",
    }
    from app.core.db import atomic

    with atomic():
        callback_log.record(
            provider.code,
            adapters.ADAPTERS["native"].from_payload(payload),
            CallbackResult("error", code="INTERNAL_ERROR", message="Temporary failure, retry"),
            time.perf_counter(),
            True,
            None,
            None,
        )
    row_id = _last_log().id
    _row, first = replay.replay(row_id)
    assert first.ok
    assert not first.duplicate
    _row, second = replay.replay(row_id)
    assert second.ok
    assert second.duplicate
    assert table.balances() == (96_00, 0)
    reconcile_clean()
