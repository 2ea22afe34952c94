"""The SoftSwiss-style casino protocol as the aggregator speaks it: ``/play`` with an
``actions`` array and ``/rollback``, JSON, ``X-REQUEST-SIGN`` = hex HMAC-SHA256 of the body,
amounts in minor units, refusals as HTTP 4xx/5xx with a numeric ``code``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

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
from app.core.money import exponent
from app.play.callbacks.adapters import softswiss_signature

#: Fields of the request body; every other field a scenario passes goes into the action.
_BODY_FIELDS = ("user_id", "currency", "game", "game_id", "finished", "session_id")


def minor_units(amount: Amount, currency: str) -> int | RawJSON:
    """``"1.00"`` EUR -> 100; what is not a whole number of minor units (or not a number at
    all) travels as its literal JSON token, for the server to refuse."""
    if isinstance(amount, RawJSON):
        return amount
    try:
        value = Decimal(amount).scaleb(exponent(currency))
    except InvalidOperation:
        return RawJSON(f'"{amount}"')
    if value == value.to_integral_value():
        return int(value)
    return RawJSON(format(value, "f"))


class SoftSwissDriver(Driver):
    protocol = "softswiss"
    game_field = "game"
    session_field = "session_id"
    codes = {
        "ok": ("ok",),
        "duplicate": ("107",),
        "not_found": ("107",),
        # A rollback of an action never seen is recorded and answered ok (the late bet is
        # then refused).
        "rollback_unknown": ("ok",),
        "insufficient": ("100",),
        "blocked": ("110",),
        "limit": ("105", "106"),
        "bad_signature": ("403",),
        "invalid_token": ("101",),
        "expired_token": ("101",),
        "wrong_currency": ("153",),
        "bad_request": ("400",),
        "unknown_game": ("154",),
        "round_closed": ("107",),
    }

    def build(self, call: str, s: PlayerSession, fields: dict[str, Any]) -> tuple[str, bytes]:
        body: dict[str, Any] = {
            "user_id": str(s.user_id),
            "currency": s.currency,
            "game": s.game,
            "session_id": s.token,
        }
        action = {k: v for k, v in fields.items() if k not in _BODY_FIELDS}
        if action.get("amount") is None:
            action.pop("amount", None)
        body.update({k: v for k, v in fields.items() if k in _BODY_FIELDS})
        if call in ("info", "balance"):
            body.update(action)
            path = "play"
        elif call == "end_round":
            body["finished"] = True
            path = "play"
        elif call == "rollback":
            body["actions"] = [{"action": "rollback", **action}]
            path = "rollback"
        else:
            if "amount" in action:
                action["amount"] = minor_units(action.pop("amount"), str(body["currency"]))
            body["actions"] = [{"action": call, **action}]
            path = "play"
        return path, encode(body)

    def signature_headers(self, body: bytes, creds: Credentials | None = None) -> dict[str, str]:
        secret = (creds or self.creds).secret or ""
        return {"X-REQUEST-SIGN": softswiss_signature(secret, body)}

    def answer(self, response: requests.Response, body: Any) -> tuple[str | None, int | None]:
        if not isinstance(body, dict):
            return None, None
        code = None
        if response.status_code == 200:
            code = "ok"
        elif _integer(body.get("code")):
            code = str(body["code"])
        return code, body["balance"] if _integer(body.get("balance")) else None

    def bet_fields(self, tx: str, round_id: str, amount: Amount) -> dict[str, Any]:
        return {"action_id": tx, "game_id": round_id, "amount": amount}

    def win_fields(
        self, tx: str, round_id: str, amount: Amount, *, bet_tx: str | None, close: bool
    ) -> dict[str, Any]:
        # A SoftSwiss win does not name its bet: the round (``game_id``) does.
        fields: dict[str, Any] = {"action_id": tx, "game_id": round_id, "amount": amount}
        if close:
            fields["finished"] = True
        return fields

    def rollback(self, s: PlayerSession, tx: str, bet_tx: str, round_id: str, **over: Any) -> Reply:
        fields = {"action_id": tx, "original_action_id": bet_tx, "game_id": round_id, **over}
        return self.call("rollback", s, fields)

    def close_round(self, s: PlayerSession, tx: str, round_id: str, bet_tx: str) -> Reply:
        return self.call("end_round", s, {"game_id": round_id})

    def play(
        self,
        s: PlayerSession,
        round_id: str,
        actions: list[tuple[str, str, str]],
        *,
        finished: bool = False,
    ) -> Reply:
        """One ``play`` of several ``(action, action_id, amount)``, in order."""
        body: dict[str, Any] = {
            "user_id": str(s.user_id),
            "currency": s.currency,
            "game": s.game,
            "session_id": s.token,
            "game_id": round_id,
            "finished": finished,
            "actions": [
                {"action": kind, "action_id": tx, "amount": minor_units(amount, s.currency)}
                for kind, tx, amount in actions
            ],
        }
        data = encode(body)
        reply = self.send("play", data, self.signature_headers(data))
        reply.call = "play"
        return reply


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
