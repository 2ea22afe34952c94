"""Pragmatic Play's seamless wallet API as Pragmatic calls an operator: one URL per method
(``/bet``, ``/result`` ...), form-encoded parameters signed by ``hash`` = MD5 of the sorted
parameters followed by the secret, numeric ``error`` codes.

The hash travels in the body, so ``signature_headers`` hands it to ``send`` under a marker
that ``send`` appends as the ``hash`` parameter: the security scenarios sign, forge or omit
it exactly as they do a header."""

from __future__ import annotations

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
from app.play.callbacks.adapters.pragmatic import pragmatic_hash

#: Where ``signature_headers`` puts the hash for ``send`` (never sent as a header).
HASH_MARKER = "X-Conformance-Pragmatic-Hash"

METHODS = {
    "info": "authenticate",
    "balance": "balance",
    "bet": "bet",
    "win": "result",
    "bonus_win": "bonusWin",
    "jackpot_win": "jackpotWin",
    "promo_win": "promoWin",
    "rollback": "refund",
    "end_round": "endRound",
}


class PragmaticDriver(Driver):
    protocol = "pragmatic"
    game_field = "gameId"
    session_field = "token"
    content_type = "application/x-www-form-urlencoded"
    floats_as_text = True
    ends_round_apart = True
    codes = {
        "ok": ("0",),
        "duplicate": ("7",),
        "not_found": ("7",),
        # A refund of a bet never seen answers success (the late bet is then refused).
        "rollback_unknown": ("0",),
        "insufficient": ("1",),
        "blocked": ("6",),
        "limit": ("50",),
        "bad_signature": ("5",),
        "invalid_token": ("4",),
        "expired_token": ("4",),
        "wrong_currency": ("7",),
        "bad_request": ("7",),
        "unknown_game": ("8",),
        "round_closed": ("3",),
    }

    def build(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> tuple[str, bytes]:
        method = METHODS[call]
        params: dict[str, Any] = {"providerId": self.creds.code, "token": s.token}
        if method != "authenticate":
            params["userId"] = str(s.user_id)
        if method not in ("authenticate", "balance", "promoWin"):
            params.update(gameId=s.game, timestamp=str(int(time.time() * 1000)))
        if method == "promoWin":
            params.update(currency=s.currency, campaignType="T")
        params.update(fields)
        clean = {k: str(v) for k, v in params.items() if v is not None}
        return method, urlencode(clean).encode()

    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        secret = (creds or self.creds).secret or ""
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return {HASH_MARKER: pragmatic_hash(secret, params)}

    def prepare(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[str, bytes, dict[str, str]]:
        digest = headers.pop(HASH_MARKER, None)
        if digest is not None:
            body = body + (b"&" if body else b"") + urlencode({"hash": digest}).encode()
        return url, body, headers

    def answer(self, response: requests.Response, body: Any) -> tuple[str | None, int | None]:
        if response.status_code != 200 or not isinstance(body, dict):
            return None, None
        currency = body.get("currency")
        if not currency or body.get("cash") is None:
            return str(body.get("error")), None
        cash, bonus = body["cash"], body.get("bonus") or 0
        return str(body.get("error")), minor_total(currency, cash, bonus, numbers=True)

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"reference": tx, "roundId": round_id, "amount": amount_text(amount)}

    def win_fields(
        self, tx: str, round_id: str, amount: Amount, *, bet_tx: str | None, close: bool
    ) -> dict[str, Any]:
        # A Pragmatic result does not name its bet: the round does.
        return {"reference": tx, "roundId": round_id, "amount": amount_text(amount)}

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        # A refund names the bet by its reference; it has no id of its own.
        return self.call("rollback", s, {"reference": bet_tx, "roundId": round_id, **over})

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        return self.call("end_round", s, {"roundId": round_id})
