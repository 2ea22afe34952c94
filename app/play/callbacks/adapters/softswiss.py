"""SoftSwiss-style casino protocol, casino side: the aggregator calls us.

* ``POST <base>/play`` and ``<base>/rollback`` with a JSON body; ``<base>`` =
  ``/api/provider-callback/<code>``.
* ``X-REQUEST-SIGN`` = hex HMAC-SHA256 of the raw body with the provider's secret.
* ``play``: ``user_id`` (our player id), ``currency``, ``game`` (the game's ``external_id``),
  ``game_id`` (the round), ``finished`` (closes the round), ``actions``: ``[{action: bet|win,
  action_id, amount, jackpot_contribution?}]``. All actions go to the wallet core as one
  ``batch``: one transaction, each action idempotent by its ``action_id``. No actions is a
  balance request (with ``finished: true`` and a ``game_id`` it closes that round).
* ``rollback``: ``actions: [{action: rollback, action_id, original_action_id}]``.
* ``session_id`` (optional, our assumption): the game session token of the launch; when sent it
  must be this player's session with this provider.
* ``freespins``: the aggregator's report of free rounds we issued through its API
  (``app.play.aggregator_api``): ``issue_id`` (our grant), ``status`` (``played``, ``expired``,
  ``canceled``), ``total_amount`` (the grant's total win, minor units); ``user_id`` and
  ``currency`` optional. Our assumption after the public descriptions: one report per issue,
  credited once (its idempotency key is ``freespins:<issue_id>``), answered ``{balance}``.
* Amounts are integers in the currency's minor units (cents).
* Answers: ``{balance, game_id, transactions: [{action_id, tx_id, processed_at}]}`` with HTTP
  200; refusals are HTTP 4xx/5xx with ``{code, message, balance?}`` (``ERRORS``).
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Any

from app.core.db import parse_row_id
from app.core.money import MoneyError, exponent
from app.play.callbacks.adapters.base import (
    BadSignature,
    WireRequest,
    WireResponse,
    json_bytes,
    json_object,
    signed_object,
    unsigned_payload,
)
from app.play.callbacks.protocol import (
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
)

SIGNATURE_HEADER = "X-REQUEST-SIGN"

#: ``status`` of a ``/freespins`` report (our assumption: ``canceled`` as SoftSwiss spells it).
FREESPINS_STATUSES = ("played", "expired", "canceled", "cancelled")

#: Our error codes -> (HTTP status, SoftSwiss code); refined by ``error_of``.
ERRORS: dict[str, tuple[int, int]] = {
    "INSUFFICIENT_FUNDS": (412, 100),
    "INVALID_SESSION": (403, 101),
    "LIMIT_EXCEEDED": (403, 105),
    "DUPLICATE_MISMATCH": (409, 107),
    "ROUND_CLOSED": (409, 107),
    "ROUND_NOT_FOUND": (404, 107),
    "TRANSACTION_NOT_FOUND": (404, 107),
    "PLAYER_BLOCKED": (403, 110),
    "GAME_NOT_FOUND": (404, 154),
    "INVALID_SIGNATURE": (403, 403),
    "ACCESS_DENIED": (403, 403),
    "VALIDATION_ERROR": (400, 400),
    "INTERNAL_ERROR": (500, 500),
}


def softswiss_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def error_of(result: CallbackResult) -> tuple[int, int]:
    """(HTTP status, SoftSwiss code) of a refusal."""
    code = result.code or ""
    if code == "VALIDATION_ERROR" and result.reason == "currency":
        return 400, 153
    return ERRORS.get(code, (400, 400))


def minor_amount(value: Any, currency: str, name: str = "amount") -> Decimal:
    """An integer of minor units as an exact decimal of ``currency`` (150 EUR -> 1.50)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CallbackError("VALIDATION_ERROR", f"{name} must be an integer of minor units")
    if value < 0:
        raise CallbackError("VALIDATION_ERROR", f"{name} must not be negative")
    return Decimal(value).scaleb(-exponent(currency))


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise CallbackError("VALIDATION_ERROR", f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise CallbackError("VALIDATION_ERROR", f"{name} must be a string")
    return str(value)


def _currency(body: dict[str, Any]) -> str:
    currency = _text(body, "currency", required=True)
    try:
        exponent(str(currency))
    except MoneyError:
        raise CallbackError(
            "VALIDATION_ERROR", f"Unknown currency {currency}", reason="currency"
        ) from None
    return str(currency)


def _actions(body: dict[str, Any]) -> list[dict[str, Any]]:
    actions = body.get("actions", [])
    if actions is None:
        return []
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise CallbackError("VALIDATION_ERROR", "actions must be a list of objects")
    if len(actions) > 50:
        raise CallbackError("VALIDATION_ERROR", "At most 50 actions per request")
    return actions


class SoftSwissAdapter:
    name = "softswiss"
    uses_key_pair = False
    form_encoded = False

    def parse(self, provider: ProviderConfig, wire: WireRequest) -> CallbackRequest:
        signature = (wire.headers.get(SIGNATURE_HEADER) or "").strip().lower()
        expected = softswiss_signature(provider.secret, wire.body)
        if not signature or not hmac.compare_digest(signature, expected):
            raise BadSignature(f"{SIGNATURE_HEADER} does not match the body")
        body = signed_object(wire.body)
        return self.from_payload({"action": wire.path or "", "body": body})

    def from_payload(self, payload: Any) -> CallbackRequest:
        if not isinstance(payload, dict) or not isinstance(payload.get("body"), dict):
            raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
        call = str(payload.get("action") or "")
        if call not in ("play", "rollback", "freespins"):
            raise CallbackError("VALIDATION_ERROR", f"Unknown SoftSwiss call {call!r}")
        body: dict[str, Any] = payload["body"]
        if call == "freespins":
            return self._freespins(body, payload)
        user = _text(body, "user_id", required=True)
        player_id = parse_row_id(user)
        if player_id is None:
            raise CallbackError("INVALID_SESSION", "user_id is not one of our players")
        currency = _currency(body)
        round_id = _text(body, "game_id")
        finished = body.get("finished", False)
        if not isinstance(finished, bool):
            raise CallbackError("VALIDATION_ERROR", "finished must be a boolean")
        common: dict[str, Any] = {
            "player_id": player_id,
            "session_token": _text(body, "session_id"),
            "game_id": _text(body, "game"),
            "round_id": round_id,
            "currency": currency,
        }
        actions = _actions(body)
        if not actions:
            if call == "play" and finished and round_id:
                return CallbackRequest(action="end_round", payload=payload, **common)
            if call == "rollback":
                raise CallbackError("VALIDATION_ERROR", "A rollback names its actions")
            return CallbackRequest(action="balance", payload=payload, **common)
        subs = [self._action(call, a, common) for a in actions]
        if finished and call == "play":
            subs[-1].close_round = True
        return CallbackRequest(action="batch", batch=subs, payload=payload, **common)

    def _freespins(self, body: dict[str, Any], payload: Any) -> CallbackRequest:
        issue_id = _text(body, "issue_id", required=True)
        status = body.get("status")
        if status not in FREESPINS_STATUSES:
            raise CallbackError(
                "VALIDATION_ERROR", f"status must be one of {', '.join(FREESPINS_STATUSES)}"
            )
        player_id = None
        user = _text(body, "user_id")
        if user is not None:
            player_id = parse_row_id(user)
            if player_id is None:
                raise CallbackError("INVALID_SESSION", "user_id is not one of our players")
        currency = _currency(body) if body.get("currency") is not None else None
        total = body.get("total_amount")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise CallbackError("VALIDATION_ERROR", "total_amount must be whole minor units")
        return CallbackRequest(
            action="freespins",
            transaction_id=f"freespins:{issue_id}",
            player_id=player_id,
            currency=currency,
            # Minor units of the grant's currency, which the wallet core knows.
            amount=total,
            amount_in_minor=True,
            free_round_id=issue_id,
            free_rounds_played=status == "played",
            payload=payload,
        )

    def _action(self, call: str, item: dict[str, Any], common: dict[str, Any]) -> CallbackRequest:
        kind = item.get("action")
        allowed = ("bet", "win") if call == "play" else ("rollback",)
        if kind not in allowed:
            raise CallbackError("VALIDATION_ERROR", f"{call} takes actions {', '.join(allowed)}")
        req = CallbackRequest(
            action=str(kind), transaction_id=_text(item, "action_id", required=True), **common
        )
        if kind == "rollback":
            req.reference_transaction_id = _text(item, "original_action_id", required=True)
            return req
        req.amount = minor_amount(item.get("amount"), common["currency"])
        contribution = item.get("jackpot_contribution")
        if contribution is not None:
            # Reported by the provider for its own jackpots; kept in the logged payload.
            minor_amount(contribution, common["currency"], "jackpot_contribution")
        return req

    def raw_payload(self, wire: WireRequest) -> Any:
        return {"action": wire.path, "body": json_object(wire.body) or unsigned_payload(wire.body)}

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        body = json_object(wire.body) or {}
        balance = None
        if result.balance is not None:
            balance = result.balance + (result.bonus_balance or 0)
        if not result.ok:
            status, code = error_of(result)
            out: dict[str, Any] = {"code": code, "message": result.message or ""}
            if balance is not None:
                out["balance"] = balance
            return WireResponse(json_bytes(out), status=status)
        out = {"balance": balance or 0}
        game_id = body.get("game_id")
        if isinstance(game_id, str | int) and not isinstance(game_id, bool):
            out["game_id"] = game_id
        transactions = result.extra.get("transactions")
        if transactions is not None:
            out["transactions"] = transactions
        return WireResponse(json_bytes(out))
