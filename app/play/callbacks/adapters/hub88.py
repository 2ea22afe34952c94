"""Hub88's wallet API, operator side: Hub88 calls us.

* ``POST <base>/user/info``, ``/user/balance``, ``/transaction/bet``, ``/transaction/win``,
  ``/transaction/rollback`` with a JSON body; ``<base>`` = ``/api/provider-callback/<code>``.
* ``X-Hub88-Signature`` = base64 RSA-SHA256 (PKCS#1 v1.5) of the raw body, verified with the
  aggregator's public key (``Provider.peer_public_key``); our answers carry the same header,
  signed with our private key (``Provider.private_key_enc``, generated when the provider is
  added; ``flask jackpotx providers key`` prints the public half for Hub88).
* Amounts are integers in 1/100,000 of the currency (1.00 EUR = 100000). They are converted
  exactly to our minor units; one that is not a whole number of them is refused
  (``RS_ERROR_WRONG_TYPES``). Balances go back the same way (floored for currencies finer
  than 5 decimals), as the playable balance (cash + bonus).
* ``user`` is our player id as a string, ``token`` the game session token of the launch;
  ``transaction_uuid`` is the idempotency key of a bet/win/rollback, ``reference_transaction_uuid``
  the bet a win pays or a rollback undoes; ``round_closed`` closes the round with the
  transaction; ``request_uuid`` is echoed. ``is_free`` bets (``reward_uuid`` = the reward
  Hub88 answered when we issued our free-spin grant, or the grant's id) cost nothing.
* Statuses: ``RS_OK`` and the ``RS_ERROR_*`` of ``status_of``; a rollback of a bet we never
  saw answers ``RS_ERROR_TRANSACTION_DOES_NOT_EXIST`` (and the late bet is refused).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.core.crypto import BadKey, rsa_sign, rsa_verify
from app.core.db import parse_row_id
from app.core.money import exponent
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

SIGNATURE_HEADER = "X-Hub88-Signature"

#: Hub88 amounts are integers of this many units per 1.00 of the currency.
UNITS = 100_000
_UNIT_DECIMALS = 5

#: Hub88 sub-paths → our actions.
HUB88_ACTIONS = {
    "user/info": "authenticate",
    "user/balance": "balance",
    "transaction/bet": "bet",
    "transaction/win": "win",
    "transaction/rollback": "rollback",
}

#: Our error codes → Hub88 statuses (refined by ``status_of``).
HUB88_ERRORS = {
    "INVALID_SIGNATURE": "RS_ERROR_INVALID_SIGNATURE",
    "INVALID_SESSION": "RS_ERROR_INVALID_TOKEN",
    "INSUFFICIENT_FUNDS": "RS_ERROR_NOT_ENOUGH_MONEY",
    "PLAYER_BLOCKED": "RS_ERROR_USER_DISABLED",
    "LIMIT_EXCEEDED": "RS_ERROR_LIMIT_REACHED",
    "DUPLICATE_MISMATCH": "RS_ERROR_DUPLICATE_TRANSACTION",
    "TRANSACTION_NOT_FOUND": "RS_ERROR_TRANSACTION_DOES_NOT_EXIST",
    "GAME_NOT_FOUND": "RS_ERROR_INVALID_GAME",
    "VALIDATION_ERROR": "RS_ERROR_WRONG_TYPES",
}


def units_to_major(value: Any) -> Decimal:
    """A Hub88 amount as an exact decimal of the currency (100000 -> 1.00000)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CallbackError(
            "VALIDATION_ERROR", "amount must be an integer of 1/100000 units (1.00 = 100000)"
        )
    return Decimal(value).scaleb(-_UNIT_DECIMALS)


def minor_to_units(minor: int, currency: str) -> int:
    """Our minor units as Hub88 units; floored where ours are finer (never shows more)."""
    exp = exponent(currency)
    if exp <= _UNIT_DECIMALS:
        return minor * 10 ** (_UNIT_DECIMALS - exp)
    return minor // 10 ** (exp - _UNIT_DECIMALS)


def major_to_units(major: str | Decimal) -> int:
    """``"1.00"`` -> 100000: what an aggregator sends (the conformance runner, tests)."""
    value = Decimal(major).scaleb(_UNIT_DECIMALS)
    if value != value.to_integral_value():
        raise ValueError(f"{major} is finer than 1/100000")
    return int(value)


def status_of(result: CallbackResult, action: str | None) -> str:
    """The Hub88 status of one of our results to the Hub88 action (sub-path) ``action``."""
    if result.ok:
        if result.reference_unknown:
            return "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
        return "RS_OK"
    code = result.code or ""
    if code == "INVALID_SESSION" and result.reason == "expired":
        return "RS_ERROR_TOKEN_EXPIRED"
    if code == "VALIDATION_ERROR" and result.reason == "currency":
        return "RS_ERROR_WRONG_CURRENCY"
    if code == "ROUND_NOT_FOUND" and action in ("transaction/win", "transaction/rollback"):
        return "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
    return HUB88_ERRORS.get(code, "RS_ERROR_UNKNOWN")


def _text_field(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CallbackError("VALIDATION_ERROR", f"{name} must be a string")
    return value


class Hub88Adapter:
    name = "hub88"
    uses_key_pair = True
    form_encoded = False

    def parse(self, provider: ProviderConfig, wire: WireRequest) -> CallbackRequest:
        signature = (wire.headers.get(SIGNATURE_HEADER) or "").strip()
        try:
            valid = bool(
                signature
                and provider.peer_public_key
                and rsa_verify(provider.peer_public_key, wire.body, signature)
            )
        except BadKey:
            valid = False
        if not valid:
            raise BadSignature(f"{SIGNATURE_HEADER} does not verify the body")
        body = signed_object(wire.body)
        return self.from_payload({"action": wire.path or "", "body": body})

    def from_payload(self, payload: Any) -> CallbackRequest:
        if not isinstance(payload, dict) or not isinstance(payload.get("body"), dict):
            raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
        wire_action = str(payload.get("action") or "")
        action = HUB88_ACTIONS.get(wire_action)
        if action is None:
            raise CallbackError("VALIDATION_ERROR", f"Unknown Hub88 call {wire_action!r}")
        body: dict[str, Any] = payload["body"]
        if not _text_field(body, "request_uuid"):
            raise CallbackError("VALIDATION_ERROR", "request_uuid is required")
        user = _text_field(body, "user")
        if not user:
            raise CallbackError("VALIDATION_ERROR", "user is required")
        player_id = parse_row_id(user)
        if player_id is None:
            raise CallbackError("INVALID_SESSION", "user is not one of our players")
        req = CallbackRequest(
            action=action,
            player_id=player_id,
            session_token=_text_field(body, "token") or None,
            game_id=_text_field(body, "game_code"),
            payload=payload,
        )
        if action in ("authenticate", "balance"):
            return req
        req.transaction_id = _text_field(body, "transaction_uuid")
        req.round_id = _text_field(body, "round")
        req.currency = body.get("currency")
        round_closed = body.get("round_closed")
        if round_closed is not None and not isinstance(round_closed, bool):
            raise CallbackError("VALIDATION_ERROR", "round_closed must be a boolean")
        req.close_round = bool(round_closed) and action in ("bet", "win")
        if action == "rollback":
            # A rollback names the bet it undoes; the amount is the bet's own.
            req.reference_transaction_id = _text_field(body, "reference_transaction_uuid")
            if req.currency is None:
                req.currency_from_player = True
            return req
        req.amount = units_to_major(body.get("amount"))
        if action == "win":
            req.reference_transaction_id = _text_field(body, "reference_transaction_uuid")
        is_free = body.get("is_free")
        if is_free is not None and not isinstance(is_free, bool):
            raise CallbackError("VALIDATION_ERROR", "is_free must be a boolean")
        if is_free and action == "bet":
            # A free bet of a reward (our free-spin grant) costs the player nothing; its
            # nominal value stays in the logged payload.
            req.free_round_id = _text_field(body, "reward_uuid") or None
            if req.free_round_id is None:
                raise CallbackError("VALIDATION_ERROR", "A free bet names its reward_uuid")
            req.amount = Decimal(0)
        return req

    def raw_payload(self, wire: WireRequest) -> Any:
        return {"action": wire.path, "body": json_object(wire.body) or unsigned_payload(wire.body)}

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        body = json_object(wire.body) or {}
        user = body.get("user")
        out: dict[str, Any] = {
            "user": user if isinstance(user, str) else str(result.user_id or ""),
            "status": status_of(result, wire.path),
            "request_uuid": body.get("request_uuid")
            if isinstance(body.get("request_uuid"), str)
            else "",
        }
        if result.currency and result.balance is not None and wire.path != "user/info":
            out["currency"] = result.currency
            out["balance"] = minor_to_units(
                result.balance + (result.bonus_balance or 0), result.currency
            )
        data = json_bytes(out)
        headers = {}
        if provider.private_key:
            headers[SIGNATURE_HEADER] = rsa_sign(provider.private_key, data)
        return WireResponse(data, headers)
