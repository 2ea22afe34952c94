"""``POST /api/provider-callback/<provider>``: the seamless wallet's door for game providers.

No JWT and no CSRF: the provider proves itself with a signature over the exact bytes it sent
(and optionally its IP). Answers are in the provider's own protocol: HTTP 200, ok or error
(SoftSwiss refuses with HTTP 4xx/5xx); an unknown provider is a 404.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache

from flask import Request, Response, current_app, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from limits import RateLimitItem, parse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.core import errors, metrics
from app.core.extensions import client_ip
from app.core.openapi import WIRE_FORMAT
from app.play.callbacks import actions, protocol
from app.play.callbacks import log as callback_log
from app.play.callbacks.adapters import ADAPTERS, BadSignature, WireRequest, unsigned_payload

blp = Blueprint(
    "provider_callbacks",
    __name__,
    url_prefix="/api/provider-callback",
    description="Seamless-wallet callbacks from game providers (signed; see docs/money.md)",
)


# Providers sign every request and call at casino throughput: their own, high limit, counted
# per provider and source address in this worker's memory (a Redis round trip per callback
# cost ~5% of a worker's CPU). With N workers a provider gets up to N times the limit; its own
# caller count decides more than that, and a flood with bad signatures is refused by the HMAC
# check, which costs less than the counter did.
class _Windows:
    """Fixed windows counted in this worker's memory, as ``limits``' ``FixedWindowRateLimiter``
    over its ``MemoryStorage`` counts them (a window opens at a key's first hit and lasts the
    limit's period; every hit counts, refused ones too), without that storage's expiry timer:
    it started a thread (a greenlet under gevent) for nearly every hit, ~2 ms of a loaded
    worker per callback. Expired windows are dropped while counting, at most every
    ``SWEEP_EVERY`` hits, so the map holds only live windows (the key names the provider code
    from the URL, which anyone can vary)."""

    SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self._windows: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()
        self._hits = 0

    def hit(self, item: RateLimitItem, *key: str) -> bool:
        now = time.time()
        with self._lock:
            self._hits += 1
            if self._hits % self.SWEEP_EVERY == 0:
                self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
            window = self._windows.get(key)
            if window is None or window[1] <= now:
                window = self._windows[key] = [0, now + item.get_expiry()]
            window[0] += 1
            return window[0] <= item.amount

    def reset_at(self, *key: str) -> float:
        window = self._windows.get(key)
        return time.time() if window is None else window[1]


_callback_windows = _Windows()


#: Action labels of the callback counter (anything else is counted as "other": the action
#: comes from the caller and must not grow the label set).
METRIC_ACTIONS = frozenset(
    {
        "batch",
        "authenticate",
        "balance",
        "bet",
        "win",
        "refund",
        "rollback",
        "end_round",
        "jackpot_win",
        "promo_win",
        "freespins",
        "unparsed",  # refused before its action was read (signature, address, body)
    }
)


def _count(provider_code: str, action: str, result: protocol.CallbackResult) -> None:
    verdict = "ok" if result.status == "ok" else (result.code or "error")
    metrics.callback(provider_code, action if action in METRIC_ACTIONS else "other", verdict)


@lru_cache(maxsize=8)
def _callback_limit(text: str) -> RateLimitItem:
    return parse(text)


@blp.before_request
def _callback_rate_limit() -> Response | None:
    return rate_limited(str((request.view_args or {}).get("provider_code")), client_ip())


def rate_limited(provider_code: str, ip: str) -> Response | None:
    """Count the callback against its provider's per-worker limit; the 429 when it is over."""
    config = current_app.config
    if not config.get("RATELIMIT_ENABLED", True):
        return None
    item = _callback_limit(config["RATE_LIMIT_CALLBACK"])
    key = (item.key_for("cb", provider_code, ip),)  # a new limit counts afresh
    if _callback_windows.hit(item, *key):
        return None
    response = errors.envelope(429, "RATE_LIMITED", "Too many requests, slow down and retry later")
    retry_in = int(_callback_windows.reset_at(*key) - time.time())
    response.headers["Retry-After"] = str(max(1, retry_in))
    return response


def _wire(adapter, path: str | None, http: Request) -> WireRequest:
    return WireRequest(
        body=http.get_data(cache=True),
        headers=http.headers,
        query=http.args,
        form=http.form if adapter.form_encoded else {},
        path=path,
    )


@blp.errorhandler(PoolTimeout)
@blp.errorhandler(OperationalError)
@blp.errorhandler(InterfaceError)
@blp.errorhandler(RedisConnectionError)
@blp.errorhandler(RedisTimeoutError)
def _outage(exc: Exception):
    """An outage before a callback reached the wallet core (the provider lookup, a request
    gate): the protocol's own retryable error when this process knows the provider, else the
    API's 503 (the provider retries either way; nothing moved)."""
    view_args = request.view_args or {}
    provider = protocol.last_known_provider(str(view_args.get("provider_code", "")))
    if provider is None:
        return errors.handle_outage(exc)
    errors.rollback_quietly()
    errors.log_outage(exc)
    adapter = ADAPTERS[provider.protocol]
    result = protocol.CallbackResult(
        "error", code=protocol.RETRYABLE_CODE, message="Temporary failure, retry"
    )
    _count(provider.code, "unparsed", result)
    out = adapter.respond(provider, result, _wire(adapter, view_args.get("action"), request))
    return Response(out.data, status=out.status, headers=out.headers, mimetype=out.mimetype)


def dispatch(provider_code: str, path: str | None, http: Request) -> Response:
    """One callback (``http``: the Flask request, or the lane's request outside Flask's request
    cycle, see ``lane``); its answer in the provider's protocol."""
    started = time.perf_counter()
    provider = protocol.provider_config(provider_code)
    if provider is None:
        response = jsonify({"status": "error", "code": "NOT_FOUND", "message": "Unknown provider"})
        response.status_code = 404
        return response
    adapter = ADAPTERS[provider.protocol]
    ip = http.remote_addr
    wire = _wire(adapter, path, http)

    def answer(result: protocol.CallbackResult, action: str = "unparsed") -> Response:
        _count(provider.code, action, result)
        out = adapter.respond(provider, result, wire)
        return Response(out.data, status=out.status, headers=out.headers, mimetype=out.mimetype)

    def refused(
        code: str, message: str, *, signature_valid: bool, reason: str | None = None
    ) -> Response:
        # A body we could not authenticate is logged by its start and size only.
        payload = adapter.raw_payload(wire) if signature_valid else unsigned_payload(wire.body)
        raw = protocol.CallbackRequest(action=path or "", payload=payload)
        return answer(
            callback_log.refuse(
                provider.code,
                raw,
                code,
                message,
                signature_valid=signature_valid,
                remote_ip=ip,
                started=started,
                reason=reason,
            )
        )

    if not provider.ip_allowed(ip):
        return refused(
            "ACCESS_DENIED",
            f"Calls from {ip} are not allowed for this provider",
            signature_valid=False,
        )
    try:
        req = adapter.parse(provider, wire)
    except BadSignature as exc:
        return refused("INVALID_SIGNATURE", str(exc), signature_valid=False)
    except protocol.CallbackError as exc:
        return refused(exc.code, exc.message, signature_valid=True, reason=exc.reason)
    return answer(actions.handle(provider, req, remote_ip=ip, started=started), req.action)


@blp.route("/<string:provider_code>")
class ProviderCallback(MethodView):
    @blp.doc(security=[{"providerSignature": []}], **{WIRE_FORMAT: True})
    def post(self, provider_code: str):
        """Native protocol: JSON body, `X-Signature` = hex HMAC-SHA256 of the raw body.

        Actions authenticate, balance, bet, win, refund, rollback, end_round. Always HTTP 200
        with `{"status": "ok", ...}` or `{"status": "error", "code", "message"}`.
        """
        return dispatch(provider_code, None, request)


@blp.route("/<string:provider_code>/<path:action>")
class ProviderCallbackAction(MethodView):
    @blp.doc(security=[{"providerSignature": []}], **{WIRE_FORMAT: True})
    def post(self, provider_code: str, action: str):
        """Protocols with one URL per call: Pragmatic-style (`/bet`, form params + `hash`),
        Hub88 (`/transaction/bet`, JSON + `X-Hub88-Signature`), SoftSwiss-style (`/play`,
        `/rollback`, JSON + `X-REQUEST-SIGN`), Evolution-style (`/debit` ..., JSON +
        `?authToken=`). See docs/providers.md."""
        return dispatch(provider_code, action, request)
