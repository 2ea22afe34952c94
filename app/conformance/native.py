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
    minor_total,
)
from app.play.callbacks.adapters import native_signature


class NativeDriver(Driver):
    protocol = "native"
    game_field = "game_id"
    session_field = "session_token"
    ends_round_apart = True
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

    def answer(self, response: requests.Response, body: Any) -> tuple[str | None, int | None]:
        if response.status_code != 200 or not isinstance(body, dict):
            return None, None
        code = "ok" if body.get("status") == "ok" else str(body.get("code"))
        if body.get("balance") is None or not body.get("currency"):
            return code, None
        return code, minor_total(
            body["currency"], body["balance"], body.get("bonus_balance") or "0"
        )

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"transaction_id": tx, "round_id": round_id, "amount": amount}

    def win_fields(
        self, tx: str, round_id: str, amount: Amount, *, bet_tx: str | None, close: bool
    ) -> dict[str, Any]:
        return {
            "transaction_id": tx,
            "round_id": round_id,
            "amount": amount,
            "reference_transaction_id": bet_tx,
        }

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        fields = {"transaction_id": tx, "reference_transaction_id": bet_tx, "round_id": round_id}
        return self.call("rollback", s, {**fields, **over})

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        return self.call("end_round", s, {"transaction_id": tx, "round_id": round_id})
