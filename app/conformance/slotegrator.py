"""The Slotegrator GIS-style protocol as the aggregator calls an operator: one URL,
form-encoded ``action=balance|bet|win|refund|rollback``, ``X-Sign`` = hex HMAC-SHA1 over the
parameters merged with ``X-Merchant-Id``/``X-Timestamp``/``X-Nonce``, sorted and URL-encoded;
answers ``{balance, transaction_id}`` or ``{error_code, error_description}``.

Every ``signature_headers`` call stamps a fresh timestamp and nonce (a real aggregator's
retry is a new request); ``signed_headers`` lets scenarios pick them (stale, reused)."""

from __future__ import annotations

import secrets
import time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, urlencode

import requests

from app.conformance.base import (
    Amount,
    Credentials,
    Driver,
    PlayerSession,
    Reply,
    amount_text,
)
from app.conformance.fixtures import CURRENCY
from app.core.money import MoneyError, parse_minor
from app.play.callbacks.adapters import slotegrator_signature

ACTIONS = {"info": "balance", "end_round": "win"}


class SlotegratorDriver(Driver):
    protocol = "slotegrator"
    game_field = "game_uuid"
    codes = {
        "ok": ("ok",),
        "duplicate": ("DUPLICATE_TRANSACTION",),
        "not_found": ("TRANSACTION_NOT_FOUND",),
        # A refund of a bet never seen is recorded and answered ok (the late bet is refused).
        "rollback_unknown": ("ok",),
        "insufficient": ("INSUFFICIENT_FUNDS",),
        "blocked": ("PLAYER_BLOCKED",),
        "limit": ("LIMIT_EXCEEDED",),
        "bad_signature": ("INVALID_SIGNATURE",),
        "invalid_token": ("INVALID_SESSION",),
        "expired_token": ("INVALID_SESSION",),
        "wrong_currency": ("VALIDATION_ERROR",),
        "bad_request": ("VALIDATION_ERROR",),
        "unknown_game": ("GAME_NOT_FOUND",),
        "round_closed": ("ROUND_CLOSED",),
    }

    def build(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> tuple[str, bytes]:
        action = ACTIONS.get(call, call)
        params: dict[str, Any] = {
            "action": action,
            "player_id": str(s.user_id),
            "session_id": s.token,
            "currency": s.currency,
        }
        if action != "balance":
            params["game_uuid"] = s.game
        params.update(fields)
        if "amount" in params and params["amount"] is not None:
            params["amount"] = amount_text(params["amount"])
        clean = {k: str(v) for k, v in params.items() if v is not None}
        return "", urlencode(clean).encode()

    def signed_headers(
        self,
        body: bytes,
        creds: Credentials | None = None,
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        creds = creds or self.creds
        headers = {
            "X-Merchant-Id": creds.code,
            "X-Timestamp": str(int(time.time()) if timestamp is None else timestamp),
            "X-Nonce": nonce or secrets.token_hex(16),
        }
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        headers["X-Sign"] = slotegrator_signature(creds.secret or "", params, headers)
        return headers

    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        return self.signed_headers(body, creds)

    def send(
        self,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> Reply:
        return super().send(path, body, headers, code=code, content_type=content_type)

    def parse(self, path: str, sent: bytes, response: requests.Response) -> Reply:
        try:
            body = response.json(parse_float=str)
        except ValueError:
            body = None
        code = f"HTTP {response.status_code}"
        balance = None
        if response.status_code == 200 and isinstance(body, dict):
            code = str(body["error_code"]) if "error_code" in body else "ok"
            try:
                if body.get("balance") is not None:
                    plain = format(Decimal(str(body["balance"])), "f")
                    balance = parse_minor(plain, CURRENCY)  # the answer names none
            except (MoneyError, InvalidOperation):
                balance = None
        return Reply(
            f"POST /{path}" if path else "POST", sent, response.status_code, body, code, balance,
            raw=response.content,
        )  # fmt: skip

    def info(self, s: PlayerSession) -> Reply:
        return self.call("info", s, {})

    def balance(self, s: PlayerSession, *, token: str | None = None) -> Reply:
        return self.call("balance", s, {"session_id": token} if token else {})

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"transaction_id": tx, "round_id": round_id, "amount": amount, "type": "bet"}

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
        # A win does not name its bet: the round does.
        fields = {"transaction_id": tx, "round_id": round_id, "amount": amount, "type": "win"}
        if close:
            fields["finished"] = "1"
        return self.call("win", s, {**fields, **over})

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        fields = {"transaction_id": tx, "bet_transaction_id": bet_tx, "round_id": round_id}
        return self.call("refund", s, {**fields, **over})

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        return self.win(s, tx, round_id, "0", bet_tx=bet_tx, close=True)
