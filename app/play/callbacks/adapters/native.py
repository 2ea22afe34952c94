"""The native protocol (docs/money.md): JSON body, ``X-Signature`` = hex HMAC-SHA256 of the raw
body with the provider's secret, one URL, ``action`` in the body."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

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


def native_signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class NativeAdapter:
    name = "native"
    uses_key_pair = False
    form_encoded = False

    def parse(self, provider: ProviderConfig, wire: WireRequest) -> CallbackRequest:
        given = (wire.headers.get("X-Signature") or "").strip().lower()
        expected = native_signature(provider.secret, wire.body)
        if not given or not hmac.compare_digest(given.encode(), expected.encode()):
            raise BadSignature("X-Signature does not match the body")
        return self.from_payload(signed_object(wire.body))

    def from_payload(self, payload: Any) -> CallbackRequest:
        if not isinstance(payload, dict):
            raise CallbackError("VALIDATION_ERROR", "The body must be a JSON object")
        return CallbackRequest(
            action=str(payload.get("action") or ""),
            transaction_id=payload.get("transaction_id"),
            round_id=payload.get("round_id"),
            game_id=payload.get("game_id"),
            session_token=payload.get("session_token"),
            amount=payload.get("amount"),
            currency=payload.get("currency"),
            reference_transaction_id=payload.get("reference_transaction_id"),
            jackpot_id=payload.get("jackpot_id"),
            free_round_id=payload.get("free_round_id"),
            payload=payload,
        )

    def raw_payload(self, wire: WireRequest) -> Any:
        return json_object(wire.body) or unsigned_payload(wire.body)

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        return WireResponse(json_bytes(result.as_native()))
