"""The Evolution One Wallet-style protocol as the provider calls an operator: ``/check``,
``/balance``, ``/debit``, ``/credit``, ``/cancel``, JSON bodies, ``authToken`` in the query,
``status`` answers.

The token travels in the URL, so ``signature_headers`` hands it to ``send`` under a marker
that ``send`` moves into the query: the security scenarios give a wrong token, another
provider's or none exactly as they do a header. The token does not depend on the body, so the
scenarios that forge a signature over another body do not apply (``not_applicable``); the
protocol's own scenarios check wrong and near-miss tokens instead."""

from __future__ import annotations

import json
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
)
from app.core.money import MoneyError, parse_minor

#: Where ``signature_headers`` puts the token for ``send`` (never sent as a header).
TOKEN_MARKER = "X-Conformance-Evolution-Auth"  # noqa: S105 - a header name, not a secret

PATHS = {"info": "check", "balance": "balance", "bet": "debit", "win": "credit",
         "rollback": "cancel", "end_round": "credit"}  # fmt: skip


class EvolutionDriver(Driver):
    protocol = "evolution"
    game_field = "game"
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
        body.update(fields)
        return path, _encode(body)

    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        return self.token_headers((creds or self.creds).secret or "")

    @staticmethod
    def token_headers(token: str) -> dict[str, str]:
        """Send ``token`` as the query's ``authToken``."""
        return {TOKEN_MARKER: token}

    def send(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
        content_type: str = "application/json",
    ) -> Reply:
        headers = dict(headers or {})
        token = headers.pop(TOKEN_MARKER, None)
        url = self.url(path, code)
        if token is not None:
            url += "?" + urlencode({"authToken": token})
        all_headers = {"Content-Type": content_type, **headers}
        response = self.http.post(url, data=body, headers=all_headers, timeout=30)
        reply = self.parse(path, body, response)
        self.log.append(reply)
        return reply

    def parse(self, path: str, sent: bytes, response: requests.Response) -> Reply:
        try:
            body = response.json(parse_float=str)
        except ValueError:
            body = None
        code = f"HTTP {response.status_code}"
        balance = None
        if response.status_code == 200 and isinstance(body, dict):
            code = str(body.get("status"))
            try:
                if body.get("balance") is not None:
                    balance = parse_minor(_plain(body["balance"]), "EUR") + parse_minor(
                        _plain(body.get("bonus") or 0), "EUR"
                    )
            except (MoneyError, InvalidOperation):
                balance = None
        return Reply(
            f"POST /{path}", sent, response.status_code, body, code, balance,
            raw=response.content,
        )  # fmt: skip

    def info(self, s: PlayerSession) -> Reply:
        return self.call("info", s, {})

    def balance(self, s: PlayerSession, *, token: str | None = None) -> Reply:
        return self.call("balance", s, {"sid": token} if token else {})

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"id": tx, "refId": tx, "round": round_id, "amount": _amount(amount)}

    def win(
        self,
        s: PlayerSession,
        tx: str,
        round_id: str,
        amount: Amount,
        *,
        bet_tx: str | None,
        close: bool = False,
        **over: Any,
    ) -> Reply:
        fields = {"id": tx, "refId": bet_tx, "round": round_id, "amount": _amount(amount)}
        return self.call("win", s, {**fields, **over})

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        fields = {"id": tx, "refId": bet_tx, "round": round_id, **over}
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


def _plain(value: Any) -> str:
    return format(Decimal(str(value)), "f")


def _encode(body: dict[str, Any]) -> bytes:
    """``encode`` with the transaction's raw amount written as its literal token."""
    tx = body.get("transaction")
    if not isinstance(tx, dict) or not isinstance(tx.get("amount"), RawJSON):
        return encode(body)
    amount = tx["amount"]
    marker = "__evolution_amount__"
    text = encode({**body, "transaction": {**tx, "amount": marker}}).decode()
    return text.replace(json.dumps(marker), amount.token).encode()
