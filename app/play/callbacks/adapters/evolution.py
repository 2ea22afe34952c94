"""Evolution One Wallet-style seamless wallet, operator side: the provider calls us.

* ``<base>/check``, ``/balance``, ``/debit``, ``/credit``, ``/cancel``, ``/promo_payout``,
  ``<base>`` = ``/api/provider-callback/<code>``; JSON bodies.
* Authentication: ``authToken`` in the query string, compared in constant time with the
  provider's secret (the body is not signed: TLS and the token are the whole proof).
* ``sid`` is the game session token of the launch, ``userId`` our player id; ``uuid`` is
  echoed; ``transaction.id`` is the idempotency key of a debit or credit; ``transaction.refId``
  is the correlation id a debit shares with its credit (``D658...``/``C658...`` both carry
  ``refId`` ``658...``, as public One Wallet descriptions show it), so a credit settles its
  debit through the round (``game.id``) it shares with it, not by an id; a ``cancel`` carries
  the **debit's own** ``transaction.id`` (it is undone by that id only; the cancel's key is
  ``cancel:<debit id>``, its amount only checked); ``transaction.amount`` is a decimal in major
  units of ``currency``; ``game.id`` is the round, ``game.details.table.id`` (or
  ``game.type``) the game.
* ``promo_payout``: a prize of Evolution's own promotion (``promoTransaction``: ``type`` such as
  ``JackpotWin``, ``id``, ``amount``), outside any round: the wallet core's ``promo_win``, a
  cash win credited once per ``promoTransaction.id`` and linked to its promotion type (and the
  jackpots it names); the same id with another amount is ``BET_ALREADY_EXIST``.
* Answers are JSON, always HTTP 200: ``{"status", "balance", "bonus", "uuid"}`` (``check``
  adds ``sid``); ``status_of`` maps our codes to Evolution's statuses.
"""

from __future__ import annotations

import hmac
from decimal import Decimal
from typing import Any

from app.core.db import parse_row_id
from app.core.money import format_minor
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
    RETRYABLE_CODE,
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
)

#: Evolution paths -> our actions.
ACTIONS = {
    "check": "authenticate",
    "balance": "balance",
    "debit": "bet",
    "credit": "win",
    "cancel": "rollback",
    "promo_payout": "promo_win",
}

#: Our codes -> Evolution statuses (anything not named is ``UNKNOWN_ERROR``, final).
STATUSES = {
    "INSUFFICIENT_FUNDS": "INSUFFICIENT_FUNDS",
    "INVALID_SIGNATURE": "INVALID_TOKEN_ID",
    "INVALID_SESSION": "INVALID_SID",
    "PLAYER_BLOCKED": "ACCOUNT_LOCKED",
    "LIMIT_EXCEEDED": "FINAL_ERROR_ACTION_FAILED",
    "VALIDATION_ERROR": "INVALID_PARAMETER",
    "GAME_NOT_FOUND": "INVALID_PARAMETER",
    "DUPLICATE_MISMATCH": "BET_ALREADY_EXIST",
    "TRANSACTION_NOT_FOUND": "BET_DOES_NOT_EXIST",
    "ROUND_NOT_FOUND": "BET_DOES_NOT_EXIST",
    "ROUND_CLOSED": "BET_ALREADY_SETTLED",
    RETRYABLE_CODE: "TEMPORARY_ERROR",
}


def status_of(result: CallbackResult) -> str:
    if result.ok:
        return "OK"
    return STATUSES.get(result.code or "", "UNKNOWN_ERROR")


class EvolutionAdapter:
    name = "evolution"
    uses_key_pair = False
    form_encoded = False

    def parse(self, provider: ProviderConfig, wire: WireRequest) -> CallbackRequest:
        given = str(wire.query.get("authToken") or "")
        if not given or not hmac.compare_digest(given.encode(), provider.secret.encode()):
            raise BadSignature("authToken is missing or wrong")
        return self.from_payload({"action": wire.path or "", "body": signed_object(wire.body)})

    def from_payload(self, payload: Any) -> CallbackRequest:
        if not isinstance(payload, dict) or not isinstance(payload.get("body"), dict):
            raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
        wire_action = str(payload.get("action") or "")
        body: dict[str, Any] = payload["body"]
        action = ACTIONS.get(wire_action)
        if action is None:
            raise CallbackError("VALIDATION_ERROR", f"Unknown method {wire_action!r}")
        player_id = None
        if body.get("userId") not in (None, ""):
            player_id = parse_row_id(body.get("userId"))
            if player_id is None:
                raise CallbackError("INVALID_SESSION", "userId is not one of our players")
        if action == "promo_win":
            tx = body.get("promoTransaction")
        elif action in ("authenticate", "balance"):
            tx = {}
        else:
            tx = body.get("transaction")
        if not isinstance(tx, dict):
            name = "promoTransaction" if action == "promo_win" else "transaction"
            raise CallbackError("VALIDATION_ERROR", f"{name} must be an object")
        game = _object(body.get("game"))
        table = _object(_object(game.get("details")).get("table"))
        req = CallbackRequest(
            action=action,
            session_token=body.get("sid") or None,
            player_id=player_id,
            round_id=game.get("id"),
            game_id=table.get("id") or game.get("type"),
            currency=body.get("currency"),
            payload=payload,
        )
        if action in ("bet", "win", "rollback", "promo_win"):
            req.transaction_id = tx.get("id")
            req.amount = tx.get("amount")
        if action == "promo_win":
            req.round_id = None  # outside any round, whatever game it names
            req.campaign_id = _promotion(tx)
        if action == "rollback":
            # The cancel names the debit by the debit's own id, and has none of its own.
            debit = tx.get("id")
            req.reference_transaction_id = debit
            req.transaction_id = f"cancel:{debit}" if isinstance(debit, str) and debit else None
        if action == "win":
            # A credit settles its round (game.id): later debits are BET_ALREADY_SETTLED.
            req.close_round = True
        if action == "rollback" and tx.get("amount") in (None, ""):
            req.amount = None
        return req

    def raw_payload(self, wire: WireRequest) -> Any:
        body = json_object(wire.body)
        if body is None:
            return unsigned_payload(wire.body)
        return {"action": wire.path, "body": body}

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        request = json_object(wire.body) or {}
        return WireResponse(json_bytes(self.render(result, wire.path, request)))

    @staticmethod
    def render(
        result: CallbackResult, path: str | None = None, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        request = request or {}
        body: dict[str, Any] = {"status": status_of(result)}
        if request.get("uuid") is not None:
            body["uuid"] = request.get("uuid")
        if (
            result.balance is not None
            and result.currency
            and (result.ok or result.code == "INSUFFICIENT_FUNDS")
        ):
            body["balance"] = _number(result.balance, result.currency)
            body["bonus"] = _number(result.bonus_balance or 0, result.currency)
        if path == "check" and result.ok:
            body["sid"] = request.get("sid")
        return body


def _promotion(promo: dict[str, Any]) -> str | None:
    """What a promo payout is linked to: its ``type``, with the ids of the jackpots it pays
    (``JackpotWin:444041xyz,555739abc``)."""
    kind = promo.get("type")
    if not isinstance(kind, str) or not kind.strip():
        return None
    jackpots = promo.get("jackpots")
    ids = [
        str(j["id"])
        for j in (jackpots if isinstance(jackpots, list) else [])
        if isinstance(j, dict) and isinstance(j.get("id"), (str, int))
    ]
    linked = f"{kind.strip()}:{','.join(ids)}" if ids else kind.strip()
    return linked if len(linked) <= 100 else kind.strip()  # the link's limit: the type alone


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(minor: int, currency: str) -> Any:
    """Major units as a JSON number (the decimal text keeps the exact value)."""
    return float(Decimal(format_minor(minor, currency)))
