"""The studio's side of the seamless-wallet protocol: signed callbacks over HTTP.

The studio reaches the casino ONLY through ``POST /api/provider-callback/<provider>`` with
``X-Signature`` = hex HMAC-SHA256 of the raw body, like any outside provider (DESIGN.md).

Invariants:
* The bytes that are signed are the bytes that are sent (the transport never re-serializes).
* A well-formed ``{"status": "error", "code": ...}`` answer is a refusal (``WalletRefused``);
  anything else that is not ``{"status": "ok"}`` (timeout, connection error, 5xx, a body that is
  not the protocol's JSON) is ``WalletUnreachable``: the caller must assume the callback may or
  may not have been applied and recover with an idempotent retry or a rollback.
* The transport is pluggable: ``RequestsTransport`` in production (and in the one-process dev
  server, which calls itself over HTTP), anything with the same ``post`` in tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any, Protocol

import requests

log = logging.getLogger(__name__)

PROVIDER_CODE = "jxoriginals"
CALLBACK_PATH = f"/api/provider-callback/{PROVIDER_CODE}"


class WalletUnreachable(Exception):
    """No trustworthy answer: the callback may or may not have been applied."""


class WalletRefused(Exception):
    """The wallet answered with a protocol error code; nothing was applied."""

    def __init__(self, code: str, message: str, answer: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.answer = answer


class Transport(Protocol):
    def post(
        self, path: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        """Send ``body`` as is; answer (HTTP status, raw response body). Raise ``OSError`` or
        ``requests.RequestException`` when the network fails."""


class RequestsTransport:
    """HTTP with a pooled ``requests.Session`` (keep-alive to the casino)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def post(
        self, path: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        response = self.session.post(
            self.base_url + path, data=body, headers=headers, timeout=timeout
        )
        return response.status_code, response.content


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WalletClient:
    def __init__(self, transport: Transport, secret: str, *, timeout: float = 5.0) -> None:
        self.transport = transport
        self.secret = secret
        self.timeout = timeout

    def call(self, action: str, **fields: Any) -> dict[str, Any]:
        """Send one callback; the ``{"status": "ok", ...}`` answer, or raise."""
        payload = {"action": action, **{k: v for k, v in fields.items() if v is not None}}
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Signature": sign(self.secret, body)}
        started = time.perf_counter()
        try:
            status, raw = self.transport.post(CALLBACK_PATH, body, headers, self.timeout)
        except (OSError, requests.RequestException) as exc:
            log.warning("wallet %s %s unreachable: %s", action, fields.get("transaction_id"), exc)
            raise WalletUnreachable(f"{action}: {type(exc).__name__}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if status != 200 or not isinstance(answer, dict):
            log.warning("wallet %s answered HTTP %s in %.1f ms", action, status, elapsed_ms)
            raise WalletUnreachable(f"{action}: HTTP {status}")
        if answer.get("status") == "ok":
            log.info("wallet %s %s ok in %.1f ms", action, fields.get("transaction_id"), elapsed_ms)
            return answer
        if answer.get("status") == "error" and isinstance(answer.get("code"), str):
            if answer["code"] == "INTERNAL_ERROR":
                # The wallet itself does not know whether it applied anything: treat as unknown.
                raise WalletUnreachable(f"{action}: INTERNAL_ERROR")
            raise WalletRefused(answer["code"], str(answer.get("message", "")), answer)
        raise WalletUnreachable(f"{action}: unexpected answer")
