"""A Pragmatic-Play-style seamless API: form-encoded parameters, ``hash`` = MD5 of the
parameters sorted by name as ``key=value&...`` followed by the secret, one URL per action
(``/authenticate``, ``/balance``, ``/bet``, ``/result``, ``/refund``, ``/endRound``,
``/jackpotWin`` with ``jackpotId`` = our pool id, optionally with ``.html``), numeric error codes
(0 ok, 1 insufficient funds, 4 invalid token, 5 wrong hash, 6 blocked ...)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.core.db import parse_row_id
from app.core.money import format_minor
from app.play.callbacks.adapters.base import BadSignature, WireRequest, WireResponse, json_bytes
from app.play.callbacks.protocol import (
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
)


def pragmatic_hash(secret: str, params: Mapping[str, Any]) -> str:
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "hash")
    return hashlib.md5((text + secret).encode(), usedforsecurity=False).hexdigest()


#: Pragmatic action names → ours.
PRAGMATIC_ACTIONS = {
    "authenticate": "authenticate",
    "balance": "balance",
    "bet": "bet",
    "result": "win",
    "refund": "refund",
    "endRound": "end_round",
    "jackpotWin": "jackpot_win",
}

#: Our error codes → Pragmatic's numeric ones.
PRAGMATIC_ERRORS = {
    "INSUFFICIENT_FUNDS": 1,
    "ROUND_CLOSED": 3,
    "INVALID_SESSION": 4,
    "INVALID_SIGNATURE": 5,
    "PLAYER_BLOCKED": 6,
    "VALIDATION_ERROR": 7,
    "DUPLICATE_MISMATCH": 7,
    "ROUND_NOT_FOUND": 7,
    "TRANSACTION_NOT_FOUND": 7,
    "ACCESS_DENIED": 7,
    "GAME_NOT_FOUND": 8,
    "LIMIT_EXCEEDED": 50,
    "INTERNAL_ERROR": 120,
}


def _wire_action(path: str | None) -> str:
    return (path or "").removesuffix(".html")


class PragmaticAdapter:
    name = "pragmatic"
    uses_key_pair = False
    form_encoded = True

    def parse(self, provider: ProviderConfig, wire: WireRequest) -> CallbackRequest:
        params = dict(wire.form.items())
        given = str(params.get("hash", "")).strip().lower()
        expected = pragmatic_hash(provider.secret, params)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadSignature("hash does not match the parameters")
        return self.from_payload({"action": wire.path or "", "params": params})

    def from_payload(self, payload: Any) -> CallbackRequest:
        if not isinstance(payload, dict):
            raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
        wire_action = _wire_action(str(payload.get("action") or ""))
        params = payload.get("params") or {}
        action = PRAGMATIC_ACTIONS.get(wire_action)
        if action is None:
            raise CallbackError("VALIDATION_ERROR", f"Unknown action {wire_action!r}")
        user = params.get("userId")
        player_id = None
        if user not in (None, ""):
            # Not int(): it takes " 7", "+7", "1_0" and 20 digits that overflow the column.
            player_id = parse_row_id(user)
            if player_id is None:
                raise CallbackError("INVALID_SESSION", "userId is not one of our players")
        reference = params.get("reference")
        req = CallbackRequest(
            action=action,
            session_token=params.get("token") or None,
            player_id=player_id,
            round_id=params.get("roundId"),
            game_id=params.get("gameId"),
            amount=params.get("amount"),
            currency=params.get("currency"),
            jackpot_id=params.get("jackpotId"),
            payload=payload,
        )
        if action in ("bet", "win", "jackpot_win"):
            req.transaction_id = reference
        elif action == "refund":
            # A refund carries the bet's reference only; it is that bet's one refund.
            req.transaction_id = f"refund:{reference}" if reference else None
            req.reference_transaction_id = reference
        req.currency_from_player = True
        return req

    def raw_payload(self, wire: WireRequest) -> Any:
        return {"action": wire.path, "params": dict(wire.form.items())}

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        return WireResponse(json_bytes(self.render(result, _wire_action(wire.path))))

    @staticmethod
    def render(result: CallbackResult, action: str | None = None) -> dict[str, Any]:
        if not result.ok:
            body: dict[str, Any] = {
                "error": PRAGMATIC_ERRORS.get(result.code or "", 100),
                "description": result.message,
            }
            if result.balance is not None and result.currency:
                body["cash"] = _number(result.balance, result.currency)
                body["bonus"] = _number(result.bonus_balance or 0, result.currency)
            return body
        body = {"error": 0, "description": "Success"}
        if result.currency:
            body["currency"] = result.currency
            body["cash"] = _number(result.balance or 0, result.currency)
            body["bonus"] = _number(result.bonus_balance or 0, result.currency)
        if result.transaction_id:
            body["transactionId"] = result.transaction_id
        if action == "bet":
            body["usedPromo"] = 0
        if result.user_id is not None and action == "authenticate":
            body["userId"] = str(result.user_id)
        return body


def _number(minor: int, currency: str) -> Any:
    # Pragmatic clients expect JSON numbers; the decimal string keeps the exact value.
    return float(Decimal(format_minor(minor, currency)))
