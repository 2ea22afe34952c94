"""Pragmatic Play's seamless wallet API, operator side: Pragmatic calls us.

* One URL per method, ``<base>/<method>`` (optionally ``.html``), ``<base>`` =
  ``/api/provider-callback/<code>``: ``authenticate``, ``balance``, ``bet``, ``result``,
  ``bonusWin``, ``jackpotWin``, ``promoWin``, ``refund``, ``endRound``.
* Form-encoded parameters; ``hash`` = MD5 of every other parameter sorted by name as
  ``key=value&...`` followed by the secret (lower-case hex).
* ``userId`` is our player id, ``token`` the game session token of the launch (sent with
  ``authenticate``, optional elsewhere: without it the player's newest session with the
  provider applies); amounts are decimal strings in the player's currency (no currency
  parameter except ``promoWin``'s, which must be the player's).
* ``reference`` is the idempotency key of a money call; a ``refund`` carries the bet's
  ``reference`` and is that bet's one refund (a refund of a bet never seen answers success
  and the late bet is refused). ``bonusWin`` pays a free-round bonus's win in its round
  (``roundId``); ``jackpotWin`` names our pool in ``jackpotId``; ``promoWin`` is a prize of
  the provider's own promotion (``campaignId``), outside any round.
* Answers are JSON with ``error`` (0 = success) and ``description``; ``status_of`` maps our
  error codes to Pragmatic's: 1 insufficient balance (with ``cash``/``bonus``), 2 player not
  found, 3 bet not allowed (closed round), 4 invalid or expired token, 5 invalid hash, 6 player
  frozen, 7 bad parameters (also a reused ``reference`` with other data), 8 game not found,
  50 bet limit reached (responsible gaming), 100 internal error, retry (Pragmatic resends:
  reconciliation), 120 internal error, no retry.
"""

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
    RETRYABLE_CODE,
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
)


def pragmatic_hash(secret: str, params: Mapping[str, Any]) -> str:
    text = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "hash")
    return hashlib.md5((text + secret).encode(), usedforsecurity=False).hexdigest()


#: Pragmatic methods → our actions.
PRAGMATIC_ACTIONS = {
    "authenticate": "authenticate",
    "balance": "balance",
    "bet": "bet",
    "result": "win",
    "bonusWin": "win",
    "jackpotWin": "jackpot_win",
    "promoWin": "promo_win",
    "refund": "refund",
    "endRound": "end_round",
}

#: The parameters each method must carry (besides ``hash`` and ``providerId``); a missing
#: one is error 7.
REQUIRED = {
    "authenticate": ("token",),
    "balance": ("userId",),
    "bet": ("userId", "gameId", "roundId", "amount", "reference"),
    "result": ("userId", "gameId", "roundId", "amount", "reference"),
    "bonusWin": ("userId", "roundId", "amount", "reference"),
    "jackpotWin": ("userId", "gameId", "roundId", "amount", "reference", "jackpotId"),
    "promoWin": ("userId", "amount", "reference", "campaignId", "currency"),
    "refund": ("userId", "reference"),
    "endRound": ("userId", "gameId", "roundId"),
}

SUCCESS = 0
RETRY = 100
NO_RETRY = 120

#: Our error codes → Pragmatic's (refined by ``status_of``).
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
    "GAME_NOT_FOUND": 8,
    "LIMIT_EXCEEDED": 50,
    RETRYABLE_CODE: RETRY,
}


def status_of(result: CallbackResult) -> int:
    """Pragmatic's ``error`` for one of our results. Anything we cannot name (a disabled
    provider, a refused IP, a free round refused) is final: 120, not retried."""
    if result.ok:
        return SUCCESS
    if result.code == "INVALID_SESSION" and result.reason == "player":
        return 2
    return PRAGMATIC_ERRORS.get(result.code or "", NO_RETRY)


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
        if not isinstance(payload, dict) or not isinstance(payload.get("params") or {}, dict):
            raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
        wire_action = _wire_action(str(payload.get("action") or ""))
        params: dict[str, Any] = payload.get("params") or {}
        action = PRAGMATIC_ACTIONS.get(wire_action)
        if action is None:
            raise CallbackError("VALIDATION_ERROR", f"Unknown method {wire_action!r}")
        missing = [name for name in REQUIRED[wire_action] if params.get(name) in (None, "")]
        if missing:
            raise CallbackError("VALIDATION_ERROR", f"Missing parameters: {', '.join(missing)}")
        user = params.get("userId")
        player_id = None
        if user not in (None, ""):
            # Not int(): it takes " 7", "+7", "1_0" and 20 digits that overflow the column.
            player_id = parse_row_id(user)
            if player_id is None:
                raise CallbackError(
                    "INVALID_SESSION", "userId is not one of our players", reason="player"
                )
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
            campaign_id=params.get("campaignId"),
            currency_from_player=True,
            payload=payload,
        )
        if action in ("bet", "win", "jackpot_win", "promo_win"):
            req.transaction_id = reference
        elif action == "refund":
            # A refund carries the bet's reference only; it is that bet's one refund.
            req.transaction_id = f"refund:{reference}"
            req.reference_transaction_id = reference
        return req

    def raw_payload(self, wire: WireRequest) -> Any:
        return {"action": wire.path, "params": dict(wire.form.items())}

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        params = dict(wire.form.items())
        return WireResponse(json_bytes(self.render(result, _wire_action(wire.path), params)))

    @staticmethod
    def render(
        result: CallbackResult, action: str | None = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"error": status_of(result)}
        if not result.ok:
            body["description"] = result.message
            if result.balance is not None and result.currency:
                # Insufficient funds: what the player has.
                body.update(_balances(result))
            return body
        body["description"] = "Success"
        if result.currency:
            body.update(_balances(result))
        if action == "balance":
            body["totalBalance"] = _number(
                (result.balance or 0) + (result.bonus_balance or 0), result.currency or ""
            )
        if action != "endRound" and result.transaction_id:
            body["transactionId"] = result.transaction_id
        if action == "bet":
            body["usedPromo"] = 0
        if action == "authenticate":
            body["userId"] = str(result.user_id)
            body["token"] = (params or {}).get("token")
        return body


def _balances(result: CallbackResult) -> dict[str, Any]:
    currency = result.currency or ""
    return {
        "currency": currency,
        "cash": _number(result.balance or 0, currency),
        "bonus": _number(result.bonus_balance or 0, currency),
    }


def _number(minor: int, currency: str) -> Any:
    # Pragmatic clients expect JSON numbers; the decimal string keeps the exact value.
    return float(Decimal(format_minor(minor, currency)))
