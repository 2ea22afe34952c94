"""What every wire adapter is: the request as it arrived, the answer it sends, and the interface.

An adapter only translates: it checks the signature (before anything is parsed or looked up),
turns the wire format into a ``protocol.CallbackRequest``, and renders the
``protocol.CallbackResult`` back in the provider's format (signing it where the protocol
signs answers). Every money rule lives in ``app.play.callbacks.actions``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core import jsonsafe
from app.play.callbacks.protocol import (
    CallbackError,
    CallbackRequest,
    CallbackResult,
    ProviderConfig,
)


class Headers(Protocol):
    """Request headers (Werkzeug's ``Headers`` or a dict): looked up by name."""

    def get(self, key: str, /) -> str | None: ...


class BadSignature(Exception):
    """The request is not signed by the provider."""


@dataclass(frozen=True)
class WireRequest:
    """A callback as received: raw body, headers, form fields, and the URL's sub-path."""

    body: bytes
    headers: Headers = field(default_factory=dict[str, str])
    form: Mapping[str, str] = field(default_factory=dict)
    #: What follows ``/api/provider-callback/<code>/`` (``bet``, ``transaction/bet``), if any.
    path: str | None = None
    #: The URL's query parameters (Evolution-style ``authToken``).
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WireResponse:
    """An answer as sent: exact bytes (what a signature covers) and extra headers."""

    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    mimetype: str = "application/json"
    #: HTTP status: 200 for protocols that answer refusals in the body; SoftSwiss answers
    #: them with 4xx/5xx.
    status: int = 200


class Adapter(Protocol):
    name: str
    #: Whether the provider signs with a shared secret (``--secret``) or a key pair
    #: (``--public-key-file``, and we sign our answers with our own key).
    uses_key_pair: bool
    #: Whether the request's fields are form-encoded (the blueprint reads ``request.form``).
    form_encoded: bool

    def parse(self, provider: ProviderConfig, wire: WireRequest) -> CallbackRequest:
        """Verify the signature (``BadSignature``) and map the request (``CallbackError``)."""
        ...

    def from_payload(self, payload: Any) -> CallbackRequest:
        """The request from its logged payload (``replay``); no signature involved."""
        ...

    def raw_payload(self, wire: WireRequest) -> Any:
        """What the log keeps of a request that was refused before it was mapped."""
        ...

    def respond(
        self, provider: ProviderConfig, result: CallbackResult, wire: WireRequest
    ) -> WireResponse:
        """The answer in the provider's format."""
        ...


def json_bytes(body: Any) -> bytes:
    """Compact, key-sorted JSON: the same answer is always the same bytes."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode() + b"\n"


#: How much of a refused body the callback log keeps (its size is logged too).
LOGGED_BODY_CHARS = 2000


def unsigned_payload(body: bytes) -> dict[str, Any]:
    """What the log keeps of a body we do not trust (bad signature, not JSON): its start and
    its size, never the whole of whatever an anonymous caller sent."""
    return {"_raw": body[:LOGGED_BODY_CHARS].decode("utf-8", "replace"), "_bytes": len(body)}


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, numbers that are not integers kept as text (no float ever
    holds money), or ``None`` (not JSON, nested too deep, not an object)."""
    try:
        payload = jsonsafe.loads(body)
    except jsonsafe.JSONRejected:
        return None
    return payload if isinstance(payload, dict) else None


def signed_object(body: bytes) -> dict[str, Any]:
    """A signed body as a JSON object, or the ``VALIDATION_ERROR`` saying why not. A key given
    twice is refused: the signer and we might read different values."""
    try:
        payload = jsonsafe.loads(body, unique_keys=True)
    except jsonsafe.JSONRejected as exc:
        raise CallbackError("VALIDATION_ERROR", str(exc)) from None
    if not isinstance(payload, dict):
        raise CallbackError("VALIDATION_ERROR", "The body must be a JSON object")
    return payload
