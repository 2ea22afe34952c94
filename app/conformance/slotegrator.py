"""The Slotegrator GIS-style protocol as the aggregator calls an operator: one URL,
form-encoded ``action=balance|bet|win|refund|rollback``, ``X-Sign`` = hex HMAC-SHA1 over the
parameters merged with ``X-Merchant-Id``/``X-Timestamp``/``X-Nonce``, sorted and URL-encoded;
answers ``{balance, transaction_id}`` or ``{error_code, error_description}``.

Every ``signature_headers`` call stamps a fresh timestamp and nonce (a real aggregator's
retry is a new request); ``signed_headers`` lets scenarios pick them (stale, reused)."""

from __future__ import annotations

import secrets
import time
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
    minor_total,
)
from app.conformance.fixtures import CURRENCY
from app.conformance.native import NativeDriver
from app.play.callbacks.adapters import slotegrator_signature

ACTIONS = {"info": "balance", "end_round": "win"}


class SlotegratorDriver(Driver):
    protocol = "slotegrator"
    game_field = "game_uuid"
    session_field = "session_id"
    content_type = "application/x-www-form-urlencoded"
    floats_as_text = True
    #: The adapter answers the native protocol's error codes but for these two.
    codes = {
        **NativeDriver.codes,
        "duplicate": ("DUPLICATE_TRANSACTION",),
        "not_found": ("TRANSACTION_NOT_FOUND",),
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

    def answer(self, response: requests.Response, body: Any) -> tuple[str | None, int | None]:
        if response.status_code != 200 or not isinstance(body, dict):
            return None, None
        code = str(body["error_code"]) if "error_code" in body else "ok"
        if body.get("balance") is None:
            return code, None
        # The answer names no currency: the runner's.
        return code, minor_total(CURRENCY, body["balance"], numbers=True)

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"transaction_id": tx, "round_id": round_id, "amount": amount, "type": "bet"}

    def win_fields(
        self, tx: str, round_id: str, amount: Amount, *, bet_tx: str | None, close: bool
    ) -> dict[str, Any]:
        # A win does not name its bet: the round does.
        fields = {"transaction_id": tx, "round_id": round_id, "amount": amount, "type": "win"}
        if close:
            fields["finished"] = "1"
        return fields

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        fields = {"transaction_id": tx, "bet_transaction_id": bet_tx, "round_id": round_id}
        return self.call("refund", s, {**fields, **over})

    def rollback_listed(
        self, s: PlayerSession, tx: str, round_id: str, items: list[tuple[str, str, str]]
    ) -> Reply:
        """``action=rollback`` of the listed ``(action, transaction_id, amount)``, as GIS
        writes its ``rollback_transactions`` (PHP-style indexed fields)."""
        fields: dict[str, Any] = {"transaction_id": tx, "round_id": round_id,
                                  "provider_round_id": round_id, "type": "rollback"}  # fmt: skip
        for i, (action, target, amount) in enumerate(items):
            item = {"action": action, "amount": amount, "transaction_id": target, "type": action}
            fields.update({f"rollback_transactions[{i}][{k}]": v for k, v in item.items()})
        return self.call("rollback", s, fields)

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        return self.win(s, tx, round_id, "0", bet_tx=bet_tx, close=True)
