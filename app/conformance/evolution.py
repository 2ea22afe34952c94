"""The Evolution One Wallet-style protocol as the provider calls an operator: ``/check``,
``/balance``, ``/debit``, ``/credit``, ``/cancel``, JSON bodies, ``authToken`` in the query,
``status`` answers.

The token travels in the URL, so ``signature_headers`` hands it to ``send`` under a marker
that ``send`` moves into the query: the security scenarios give a wrong token, another
provider's or none exactly as they do a header. The token does not depend on the body, so the
scenarios that forge a signature over another body do not apply (``not_applicable``); the
protocol's own scenarios check wrong and near-miss tokens instead."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import requests

from app.conformance.base import (
    Amount,
    Credentials,
    Driver,
    PlayerSession,
    RawJSON,
    Reply,
    encode,
    minor_total,
)

#: Where ``signature_headers`` puts the token for ``send`` (never sent as a header).
TOKEN_MARKER = "X-Conformance-Evolution-Auth"  # noqa: S105 - a header name, not a secret

PATHS = {"info": "check", "balance": "balance", "bet": "debit", "win": "credit",
         "rollback": "cancel", "end_round": "credit", "promo_payout": "promo_payout"}  # fmt: skip


class EvolutionDriver(Driver):
    protocol = "evolution"
    game_field = "game"
    session_field = "sid"
    floats_as_text = True
    not_applicable = (
        "bad_signature_is_refused",
        "tampered_body_is_refused",
        "replayed_signature_with_another_body_is_refused",
    )
    codes = {
        "ok": ("OK",),
        "duplicate": ("BET_ALREADY_EXIST",),
        "not_found": ("BET_DOES_NOT_EXIST",),
        # A cancel of a debit never seen is recorded and answered OK (the late debit is
        # refused).
        "rollback_unknown": ("OK",),
        "insufficient": ("INSUFFICIENT_FUNDS",),
        "blocked": ("ACCOUNT_LOCKED",),
        "limit": ("FINAL_ERROR_ACTION_FAILED",),
        "bad_signature": ("INVALID_TOKEN_ID",),
        "invalid_token": ("INVALID_SID",),
        "expired_token": ("INVALID_SID",),
        "wrong_currency": ("INVALID_PARAMETER",),
        "bad_request": ("INVALID_PARAMETER",),
        "unknown_game": ("INVALID_PARAMETER",),
        "round_closed": ("BET_ALREADY_SETTLED",),
    }

    def build(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> tuple[str, bytes]:
        path = PATHS[call]
        fields = dict(fields)
        body: dict[str, Any] = {
            "sid": fields.pop("sid", s.token),
            "userId": fields.pop("userId", str(s.user_id)),
            "currency": fields.pop("currency", s.currency),
            "uuid": str(uuid.uuid4()),
        }
        if path in ("debit", "credit", "cancel"):
            game = fields.pop("game", s.game)
            round_id = fields.pop("round", None)
            body["game"] = {"id": round_id, "type": "slots",
                            "details": {"table": {"id": game, "vid": None}}}  # fmt: skip
            tx = {"id": fields.pop("id", None), "refId": fields.pop("refId", None)}
            if "amount" in fields:
                tx["amount"] = fields.pop("amount")
            body["transaction"] = {k: v for k, v in tx.items() if v is not None}
        if path == "promo_payout":
            game = fields.pop("game", s.game)
            body["game"] = {"id": None, "type": "slots",
                            "details": {"table": {"id": game, "vid": None}}}  # fmt: skip
            promo = {"type": fields.pop("type", "JackpotWin"), "id": fields.pop("id", None)}
            if "amount" in fields:
                promo["amount"] = _amount(fields.pop("amount"))
            if "jackpots" in fields:
                promo["jackpots"] = fields.pop("jackpots")
            body["promoTransaction"] = promo
        body.update(fields)
        return path, encode(body)

    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        return self.token_headers((creds or self.creds).secret or "")

    @staticmethod
    def token_headers(token: str) -> dict[str, str]:
        """Send ``token`` as the query's ``authToken``."""
        return {TOKEN_MARKER: token}

    def prepare(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[str, bytes, dict[str, str]]:
        token = headers.pop(TOKEN_MARKER, None)
        if token is not None:
            url += "?" + urlencode({"authToken": token})
        return url, body, headers

    def answer(self, response: requests.Response, body: Any) -> tuple[str | None, int | None]:
        if response.status_code != 200 or not isinstance(body, dict):
            return None, None
        if body.get("balance") is None:
            return str(body.get("status")), None
        cash, bonus = body["balance"], body.get("bonus") or 0
        return str(body.get("status")), minor_total("EUR", cash, bonus, numbers=True)

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"id": tx, "refId": tx, "round": round_id, "amount": _amount(amount)}

    def win_fields(
        self, tx: str, round_id: str, amount: Amount, *, bet_tx: str | None, close: bool
    ) -> dict[str, Any]:
        return {"id": tx, "refId": bet_tx, "round": round_id, "amount": _amount(amount)}

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        # A cancel names the debit by the debit's own id (it has no id of its own); its refId
        # is the debit's correlation id (``bet_fields``: the debit's id too).
        fields = {"id": bet_tx, "refId": bet_tx, "round": round_id, **over}
        if "amount" in fields:
            fields["amount"] = _amount(fields["amount"])
        return self.call("rollback", s, fields)

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        # A credit settles the round (One Wallet has no separate round end).
        return self.win(s, tx, round_id, "0", bet_tx=bet_tx)


def _amount(amount: Amount) -> Any:
    """A decimal string travels as a JSON number token; ``RawJSON`` as itself."""
    if isinstance(amount, RawJSON):
        return amount
    try:
        Decimal(amount)
    except InvalidOperation:
        return amount
    return RawJSON(amount)
