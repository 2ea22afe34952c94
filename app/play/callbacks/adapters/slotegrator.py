"""Slotegrator GIS-style seamless wallet, operator side: the aggregator calls us.

* One URL, ``/api/provider-callback/<code>``; form-encoded parameters with ``action`` =
  ``balance``, ``bet``, ``win``, ``refund`` or ``rollback``.
* Headers ``X-Merchant-Id``, ``X-Timestamp`` (Unix seconds), ``X-Nonce`` and ``X-Sign`` = hex
  HMAC-SHA1 (the provider's secret) of every parameter merged with those three headers,
  sorted by name and URL-encoded as a query string. A timestamp more than ``SKEW_SECONDS``
  from our clock is refused (``REQUEST_EXPIRED``), a nonce used before is refused
  (``NONCE_REUSED``), both after the signature checked out and before anything else.
* ``player_id`` is our player id, ``session_id`` the game session token of the launch;
  amounts are decimal strings in major units of ``currency``; ``transaction_id`` is the
  idempotency key; ``refund`` names the bet in ``bet_transaction_id``; ``finished=1`` on a bet
  or win closes its round.
* Free spins (a grant issued through ``/freespins/set``, ``app.play.aggregator_api``): a bet
  with ``type=freespin`` names the grant in ``freespin_id`` (our issue id): it uses one spin of
  it and debits nothing (its ``amount``, the spin's nominal stake, is not taken); its win is
  the round's win, booked as the grant's winnings.
* ``rollback`` undoes the transactions its ``rollback_transactions`` list names (``action``
  bet/win/refund, ``transaction_id``, ``amount``, ``type``; form-encoded PHP-style,
  ``rollback_transactions[0][transaction_id]=...``) and no other: one ``batch`` for the wallet
  core, all or none, each listed transaction undone once (the stored amounts apply; one never
  seen is recorded, answered ok, and arrives refused later). The answer adds the listed ids
  (``rollback_transactions``). A listed ``refund`` moves nothing: it is undone with its bet
  (the bet's stake came back once; undoing both leaves it so); a list of refunds without a bet
  is refused. Without a list, ``rollback`` names one bet in ``bet_transaction_id`` (our
  earlier form, kept).
* Answers are JSON, always HTTP 200: ``{"balance", "transaction_id"}`` or ``{"error_code",
  "error_description"}`` (``INSUFFICIENT_FUNDS`` also carries ``balance``); only
  ``INTERNAL_ERROR`` is retryable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from app.core.db import parse_row_id
from app.core.money import format_minor
from app.play.callbacks import nonces
from app.play.callbacks.adapters.base import BadSignature, WireRequest, WireResponse, json_bytes
from app.play.callbacks.protocol import (
    RETRYABLE_CODE,
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
)

#: The headers the signature covers besides the parameters.
SIGNED_HEADERS = ("X-Merchant-Id", "X-Timestamp", "X-Nonce")
SKEW_SECONDS = nonces.SKEW_SECONDS

ACTIONS = ("balance", "bet", "win", "refund", "rollback")

#: Our codes -> Slotegrator-style ``error_code`` (anything not named is final too).
ERRORS = {
    "INSUFFICIENT_FUNDS": "INSUFFICIENT_FUNDS",
    "INVALID_SIGNATURE": "INVALID_SIGNATURE",
    "INVALID_SESSION": "INVALID_SESSION",
    "PLAYER_BLOCKED": "PLAYER_BLOCKED",
    "LIMIT_EXCEEDED": "LIMIT_EXCEEDED",
    "VALIDATION_ERROR": "VALIDATION_ERROR",
    "DUPLICATE_MISMATCH": "DUPLICATE_TRANSACTION",
    "TRANSACTION_NOT_FOUND": "TRANSACTION_NOT_FOUND",
    "ROUND_NOT_FOUND": "TRANSACTION_NOT_FOUND",
    "ROUND_CLOSED": "ROUND_CLOSED",
    "GAME_NOT_FOUND": "GAME_NOT_FOUND",
    RETRYABLE_CODE: "INTERNAL_ERROR",
}


def slotegrator_signature(
    secret: str, params: Mapping[str, Any], headers: Mapping[str, Any]
) -> str:
    """Hex HMAC-SHA1 of the parameters merged with the signed headers, sorted by name and
    URL-encoded (``key=value&...``, spaces as ``+``)."""
    merged = {**{k: params[k] for k in params}, **{k: headers[k] for k in SIGNED_HEADERS}}
    # Sorted by the top-level name only (PHP's ksort): the fields of a nested list
    # (``rollback_transactions[0][action]``...) keep the order they were sent in, as PHP's
    # http_build_query writes them.
    names = sorted(merged, key=lambda key: key.split("[", 1)[0])
    text = urlencode([(k, str(merged[k])) for k in names])
    return hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()


def error_code_of(result: CallbackResult) -> str:
    if result.reason in ("stale", "nonce") and result.code == "INVALID_SIGNATURE":
        return "REQUEST_EXPIRED" if result.reason == "stale" else "NONCE_REUSED"
    return ERRORS.get(result.code or "", "UNKNOWN_ERROR")


class SlotegratorAdapter:
    name = "slotegrator"
    uses_key_pair = False
    form_encoded = True

    def parse(self, provider: ProviderConfig, wire: WireRequest) -> CallbackRequest:
        params = dict(wire.form.items())
        headers = {name: wire.headers.get(name) for name in SIGNED_HEADERS}
        given = (wire.headers.get("X-Sign") or "").strip().lower()
        if not given or any(v in (None, "") for v in headers.values()):
            raise BadSignature("X-Sign, X-Merchant-Id, X-Timestamp and X-Nonce are required")
        expected = slotegrator_signature(provider.secret, params, headers)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadSignature("X-Sign does not match the parameters and headers")
        stamp = parse_row_id(headers["X-Timestamp"])
        if stamp is None or abs(time.time() - stamp) > SKEW_SECONDS:
            raise CallbackError(
                "INVALID_SIGNATURE", "X-Timestamp is outside the allowed window", reason="stale"
            )
        nonce = str(headers["X-Nonce"])
        if len(nonce) > 100 or not nonces.claim(provider.id, nonce):
            raise CallbackError("INVALID_SIGNATURE", "X-Nonce was already used", reason="nonce")
        return self.from_payload({"params": params})

    def from_payload(self, payload: Any) -> CallbackRequest:
        if not isinstance(payload, dict) or not isinstance(payload.get("params") or {}, dict):
            raise CallbackError("VALIDATION_ERROR", "The logged payload cannot be replayed")
        params: dict[str, Any] = payload.get("params") or {}
        action = str(params.get("action") or "")
        if action not in ACTIONS:
            raise CallbackError("VALIDATION_ERROR", f"Unknown action {action!r}")
        player_id = None
        user = params.get("player_id")
        if user not in (None, ""):
            player_id = parse_row_id(user)
            if player_id is None:
                raise CallbackError("INVALID_SESSION", "player_id is not one of our players")
        req = CallbackRequest(
            action=action,
            session_token=params.get("session_id") or None,
            player_id=player_id,
            round_id=params.get("round_id"),
            game_id=params.get("game_uuid"),
            amount=params.get("amount"),
            currency=params.get("currency"),
            transaction_id=params.get("transaction_id"),
            close_round=str(params.get("finished") or "").lower() in ("1", "true"),
            payload=payload,
        )
        listed = _rollback_list(params) if action == "rollback" else None
        if listed is not None:
            return _rollback_batch(req, listed)
        if action in ("refund", "rollback"):
            req.reference_transaction_id = params.get("bet_transaction_id")
            if params.get("amount") in (None, ""):
                # Without an amount the stored stake applies.
                req.amount = None
        if action == "bet" and params.get("type") == "freespin":
            req.free_round_id = str(params.get("freespin_id") or "").strip() or None
            if req.free_round_id is None:
                raise CallbackError("VALIDATION_ERROR", "A freespin bet names its freespin_id")
            req.amount = "0"  # operator-funded: the nominal stake is not the player's
        if action == "balance":
            req.transaction_id = None
        return req

    def raw_payload(self, wire: WireRequest) -> Any:
        return {"params": dict(wire.form.items())}

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        return WireResponse(json_bytes(self.render(result, _listed_ids(wire.form))))

    @staticmethod
    def render(result: CallbackResult, rollback_ids: list[str] | None = None) -> dict[str, Any]:
        if not result.ok:
            body: dict[str, Any] = {
                "error_code": error_code_of(result),
                "error_description": result.message,
            }
            if result.code == "INSUFFICIENT_FUNDS" and result.balance is not None:
                body["balance"] = _number(result)
            return body
        body = {"balance": _number(result)}
        if result.transaction_id:
            body["transaction_id"] = result.transaction_id
        if rollback_ids is not None:
            body["rollback_transactions"] = rollback_ids
        return body


_ROLLBACK_ITEM = re.compile(r"rollback_transactions\[(\d{1,3})\](?:\[([a-z_]{1,40})\])?")


def _rollback_list(params: Mapping[str, Any]) -> list[dict[str, str]] | None:
    """The ``rollback_transactions`` items, in their index order (None: the request has no
    list). ``rollback_transactions[i]`` alone is an id; ``[i][field]`` the item's fields."""
    items: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        match = _ROLLBACK_ITEM.fullmatch(key)
        if match is None:
            if key.startswith("rollback_transactions"):
                raise CallbackError("VALIDATION_ERROR", f"Unreadable list field {key[:60]!r}")
            continue
        item = items.setdefault(int(match.group(1)), {})
        item[match.group(2) or "transaction_id"] = str(value)
    if not items:
        return None
    if len(items) > 50:
        raise CallbackError("VALIDATION_ERROR", "At most 50 rollback_transactions")
    return [items[i] for i in sorted(items)]


def _listed_ids(form: Mapping[str, Any]) -> list[str] | None:
    """The ids a rollback listed, for its answer (None: not a listed rollback)."""
    if form.get("action") != "rollback":
        return None
    try:
        listed = _rollback_list(form)
    except CallbackError:
        return None
    return None if listed is None else [i.get("transaction_id", "") for i in listed]


def _rollback_batch(req: CallbackRequest, listed: list[dict[str, str]]) -> CallbackRequest:
    """One ``rollback`` per listed bet or win, in one batch; refunds move nothing (above)."""
    tx = str(req.transaction_id or "").strip()
    if not tx:
        raise CallbackError("VALIDATION_ERROR", "transaction_id is required")
    subs: list[CallbackRequest] = []
    ids: list[str] = []
    kinds = set()
    for item in listed:
        target = (item.get("transaction_id") or "").strip()
        kind = (item.get("action") or "bet").strip()
        if not target or kind not in ("bet", "win", "refund"):
            raise CallbackError("VALIDATION_ERROR", "Each rollback_transactions item names a "
                                "bet, win or refund by its transaction_id")  # fmt: skip
        ids.append(target)
        kinds.add(kind)
        if kind == "refund":
            continue
        subs.append(
            CallbackRequest(
                action="rollback",
                # Each undoing has an id of its own: the rollback's and the one it undoes.
                transaction_id=f"{tx}:{target}",
                reference_transaction_id=target,
                round_id=req.round_id,
                session_token=req.session_token,
                player_id=req.player_id,
                currency=req.currency,
                game_id=req.game_id,
            )
        )
    if "refund" in kinds and "bet" not in kinds:
        raise CallbackError("VALIDATION_ERROR", "A refund is rolled back only with its bet")
    if len(set(ids)) != len(ids):
        raise CallbackError("DUPLICATE_MISMATCH", "A transaction is listed twice")
    req.action = "batch"
    req.batch = subs
    req.amount = None
    return req


def _number(result: CallbackResult) -> Any:
    """Cash + bonus in major units as a JSON number (the decimal text keeps the exact value)."""
    currency = result.currency or ""
    total = (result.balance or 0) + (result.bonus_balance or 0)
    return float(Decimal(format_minor(total, currency)))
