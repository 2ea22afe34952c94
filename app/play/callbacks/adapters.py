"""Wire protocols of provider callbacks, mapped onto the one seamless-wallet service.

An adapter verifies the request's signature, turns the wire format into a
``protocol.CallbackRequest`` and renders a ``CallbackResult`` back in the provider's format.

* ``native`` (DESIGN.md): JSON body, ``X-Signature`` = hex HMAC-SHA256 of the raw body.
* ``pragmatic``: a Pragmatic-Play-style seamless API: form-encoded parameters, ``hash`` = MD5
  of the parameters sorted by name as ``key=value&...`` followed by the secret, one URL per
  action (``/authenticate``, ``/balance``, ``/bet``, ``/result``, ``/refund``, ``/endRound``,
  ``/jackpotWin`` with ``jackpotId`` = our pool id),
  numeric error codes (0 ok, 1 insufficient funds, 4 invalid token, 5 wrong hash, 6 blocked).

Signatures are compared in constant time and checked before anything is parsed or looked up.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from app.core import jsonsafe
from app.core.db import parse_row_id
from app.core.money import format_minor
from app.play.callbacks.protocol import (
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
)


class BadSignature(Exception):
    """The request is not signed with the provider's secret."""


def native_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def pragmatic_hash(secret: str, params: Mapping[str, Any]) -> str:
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "hash")
    return hashlib.md5((text + secret).encode(), usedforsecurity=False).hexdigest()


#: How much of a refused body the callback log keeps (its size is logged too).
LOGGED_BODY_CHARS = 2000


def unsigned_payload(body: bytes) -> dict[str, Any]:
    """What the log keeps of a body we do not trust (bad signature, not JSON): its start and
    its size, never the whole of whatever an anonymous caller sent."""
    return {"_raw": body[:LOGGED_BODY_CHARS].decode("utf-8", "replace"), "_bytes": len(body)}


class NativeAdapter:
    name = "native"

    def parse(
        self, provider: ProviderConfig, body: bytes, headers: Mapping[str, str], *_: Any
    ) -> CallbackRequest:
        given = (headers.get("X-Signature") or "").strip().lower()
        expected = native_signature(provider.secret, body)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadSignature("X-Signature does not match the body")
        try:
            # Numbers stay text: the service parses them exactly (no float ever holds money).
            # A key given twice is refused: the signer and we might read different values.
            payload = jsonsafe.loads(body, unique_keys=True)
        except jsonsafe.JSONRejected as exc:
            raise CallbackError("VALIDATION_ERROR", str(exc)) from None
        if not isinstance(payload, dict):
            raise CallbackError("VALIDATION_ERROR", "The body must be a JSON object")
        return self.from_payload(payload)

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> CallbackRequest:
        return CallbackRequest(
            action=str(payload.get("action") or ""),
            transaction_id=payload.get("transaction_id"),
            round_id=payload.get("round_id"),
            game_id=payload.get("game_id"),
            session_token=payload.get("session_token"),
            amount=payload.get("amount"),
            currency=payload.get("currency"),
            reference_transaction_id=payload.get("reference_transaction_id"),
            jackpot_id=payload.get("jackpot_id"),
            free_round_id=payload.get("free_round_id"),
            payload=payload,
        )

    @staticmethod
    def raw_payload(body: bytes) -> Any:
        try:
            return jsonsafe.loads(body)
        except jsonsafe.JSONRejected:
            return unsigned_payload(body)

    @staticmethod
    def render(result: CallbackResult) -> dict[str, Any]:
        return result.as_native()


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
    "ACCESS_DENIED": 7,
    "GAME_NOT_FOUND": 8,
    "LIMIT_EXCEEDED": 50,
    "INTERNAL_ERROR": 120,
}


class PragmaticAdapter:
    name = "pragmatic"

    def parse(
        self,
        provider: ProviderConfig,
        body: bytes,
        headers: Mapping[str, str],
        form: Mapping[str, str],
        path_action: str | None,
    ) -> CallbackRequest:
        params = dict(form.items())
        given = str(params.get("hash", "")).strip().lower()
        expected = pragmatic_hash(provider.secret, params)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadSignature("hash does not match the parameters")
        return self.from_payload({"action": path_action or "", "params": params})

    @staticmethod
    def from_payload(payload: dict[str, Any]) -> CallbackRequest:
        wire_action = str(payload.get("action") or "").removesuffix(".html")
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

    @staticmethod
    def raw_payload(form: Mapping[str, str], path_action: str | None) -> Any:
        return {"action": path_action, "params": dict(form.items())}

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


ADAPTERS: dict[str, Any] = {"native": NativeAdapter(), "pragmatic": PragmaticAdapter()}


def request_from_log(provider: ProviderConfig, payload: Any) -> CallbackRequest:
    adapter = ADAPTERS[provider.protocol]
    if not isinstance(payload, dict):
        raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
    return adapter.from_payload(payload)
