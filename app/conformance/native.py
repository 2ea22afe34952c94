"""The native protocol (docs/money.md) as a provider speaks it: one URL, JSON, ``X-Signature``
= hex HMAC-SHA256 of the body."""

from __future__ import annotations

from typing import Any

import requests

from app.conformance.base import (
    Amount,
    Credentials,
    Driver,
    PlayerSession,
    Reply,
    encode,
)
from app.core.money import MoneyError, parse_minor
from app.play.callbacks.adapters import native_signature


class NativeDriver(Driver):
    protocol = "native"
    game_field = "game_id"
    codes = {
        "ok": ("ok",),
        "duplicate": ("DUPLICATE_MISMATCH",),
        "not_found": ("TRANSACTION_NOT_FOUND", "ROUND_NOT_FOUND"),
        # A rollback of a bet never seen is recorded and answered ok (the late bet is refused).
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
        action = {"info": "authenticate"}.get(call, call)
        payload: dict[str, Any] = {"action": action, "session_token": s.token}
        if action in ("bet", "win"):
            payload.update(game_id=s.game, currency=s.currency)
        if action in ("refund", "rollback"):
            payload.update(currency=s.currency)
        payload.update(fields)
        return "", encode({k: v for k, v in payload.items() if v is not None})

    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        secret = (creds or self.creds).secret or ""
        return {"X-Signature": native_signature(secret, body)}

    def parse(self, path: str, sent: bytes, response: requests.Response) -> Reply:
        try:
            body = response.json()
        except ValueError:
            body = None
        code = f"HTTP {response.status_code}"
        balance = None
        if response.status_code == 200 and isinstance(body, dict):
            code = "ok" if body.get("status") == "ok" else str(body.get("code"))
            try:
                if body.get("balance") is not None and body.get("currency"):
                    balance = parse_minor(body["balance"], body["currency"]) + parse_minor(
                        body.get("bonus_balance") or "0", body["currency"]
                    )
            except MoneyError:
                balance = None
        return Reply(
            f"POST /{path}" if path else "POST", sent, response.status_code, body, code, balance,
            raw=response.content,
        )  # fmt: skip

    def info(self, s: PlayerSession) -> Reply:
        return self.call("info", s, {})

    def balance(self, s: PlayerSession, *, token: str | None = None) -> Reply:
        return self.call("balance", s, {"session_token": token} if token else {})

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"transaction_id": tx, "round_id": round_id, "amount": amount}

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
        fields = {
            "transaction_id": tx,
            "round_id": round_id,
            "amount": amount,
            "reference_transaction_id": bet_tx,
            **over,
        }
        reply = self.call("win", s, fields)
        if close and self.expects(reply, "ok"):
            self.close_round(s, f"{tx}:end", round_id, bet_tx or "")
        return reply

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        fields = {"transaction_id": tx, "reference_transaction_id": bet_tx, "round_id": round_id}
        return self.call("rollback", s, {**fields, **over})

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        return self.call("end_round", s, {"transaction_id": tx, "round_id": round_id})
