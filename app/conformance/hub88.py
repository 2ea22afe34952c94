"""Hub88's wallet API as the aggregator calls an operator: ``/user/info``, ``/user/balance``,
``/transaction/{bet,win,rollback}``, JSON, RSA-SHA256 in ``X-Hub88-Signature`` both ways,
amounts x 100,000. Every answer's signature is checked with our public key: an answer that
is not signed by the operator's key counts as ``BAD_ANSWER_SIGNATURE``, whatever it says."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import requests

from app.conformance.base import (
    Amount,
    Credentials,
    Driver,
    PlayerSession,
    RawJSON,
    Reply,
    encode,
)
from app.core.crypto import BadKey, rsa_sign, rsa_verify
from app.core.money import MoneyError, exponent
from app.play.callbacks.adapters.hub88 import SIGNATURE_HEADER, major_to_units

PATHS = {
    "info": "user/info",
    "balance": "user/balance",
    "bet": "transaction/bet",
    "win": "transaction/win",
    "rollback": "transaction/rollback",
}


def units(amount: Amount) -> Any:
    return amount if isinstance(amount, RawJSON) else major_to_units(amount)


class Hub88Driver(Driver):
    protocol = "hub88"
    game_field = "game_code"
    session_field = "token"
    codes = {
        "ok": ("RS_OK",),
        "duplicate": ("RS_ERROR_DUPLICATE_TRANSACTION",),
        "not_found": ("RS_ERROR_TRANSACTION_DOES_NOT_EXIST",),
        "rollback_unknown": ("RS_ERROR_TRANSACTION_DOES_NOT_EXIST",),
        "insufficient": ("RS_ERROR_NOT_ENOUGH_MONEY",),
        "blocked": ("RS_ERROR_USER_DISABLED",),
        "limit": ("RS_ERROR_LIMIT_REACHED",),
        "bad_signature": ("RS_ERROR_INVALID_SIGNATURE",),
        "invalid_token": ("RS_ERROR_INVALID_TOKEN",),
        "expired_token": ("RS_ERROR_TOKEN_EXPIRED",),
        "wrong_currency": ("RS_ERROR_WRONG_CURRENCY",),
        "bad_request": ("RS_ERROR_WRONG_TYPES",),
        "unknown_game": ("RS_ERROR_INVALID_GAME",),
        "round_closed": ("RS_ERROR_UNKNOWN",),
    }

    def build(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> tuple[str, bytes]:
        payload: dict[str, Any] = {"user": str(s.user_id), "request_uuid": str(uuid.uuid4())}
        if call != "info":
            payload.update(token=s.token, game_code=s.game)
        if call in ("bet", "win"):
            payload.update(currency=s.currency, is_free=False, round_closed=False, bet="spin")
        payload.update(fields)
        return PATHS[call], encode({k: v for k, v in payload.items() if v is not None})

    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        key = (creds or self.creds).private_key or ""
        return {SIGNATURE_HEADER: rsa_sign(key, body)}

    def answer(self, response: requests.Response, body: Any) -> tuple[str | None, int | None]:
        if response.status_code != 200 or not isinstance(body, dict):
            return None, None
        code = str(body.get("status")) if self._signed(response) else "BAD_ANSWER_SIGNATURE"
        balance = None
        try:
            if isinstance(body.get("balance"), int) and body.get("currency"):
                exp = exponent(str(body["currency"]))
                minor = Decimal(body["balance"]).scaleb(exp - 5)
                balance = int(minor) if minor == minor.to_integral_value() else None
        except MoneyError:
            balance = None
        return code, balance

    def answer_signed(self, response: requests.Response) -> bool | None:
        # Judged on a well-formed answer only (a 5xx page or HTML is not the protocol's).
        if response.status_code != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        return self._signed(response) if isinstance(body, dict) else None

    def _signed(self, response: requests.Response) -> bool:
        signature = response.headers.get(SIGNATURE_HEADER)
        if not signature or not self.creds.answer_key:
            return False
        try:
            return rsa_verify(self.creds.answer_key, response.content, signature)
        except BadKey:
            return False

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"transaction_uuid": tx, "round": round_id, "amount": units(amount)}

    def win_fields(
        self, tx: str, round_id: str, amount: Amount, *, bet_tx: str | None, close: bool
    ) -> dict[str, Any]:
        return {
            "transaction_uuid": tx,
            "round": round_id,
            "amount": units(amount),
            "reference_transaction_uuid": bet_tx,
            "round_closed": close,
        }

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        fields = {
            "transaction_uuid": tx,
            "reference_transaction_uuid": bet_tx,
            "round": round_id,
            "round_closed": True,
            **over,
        }
        return self.call("rollback", s, fields)

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        return self.win(s, tx, round_id, "0", bet_tx=bet_tx, close=True)
