"""Response hardening and request gates shared by every blueprint."""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.core import jsonsafe
from app.core.errors import MaintenanceMode, ValidationError
from app.core.settings import maintenance_state

#: Paths that keep working in maintenance mode: staff, providers, gateways, ops.
_MAINTENANCE_EXEMPT = (
    "/api/admin",
    "/api/provider-callback",
    "/api/payment/webhook",
    "/api/docs",
    "/api/openapi.json",
    "/api/status",
)

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'; object-src 'none'"
)


#: Paths whose bodies come from machines that sign small messages: a few KiB at most.
_MACHINE_BODIES = ("/api/provider-callback", "/api/payment/webhook")


def _body_limit() -> int | None:
    """The largest body this request may send, by path (``None``: the app's default)."""
    path = request.path
    if path.startswith(_MACHINE_BODIES):
        return int(current_app.config["CALLBACK_MAX_BODY_BYTES"])
    if path.startswith("/api/") and request.mimetype == "application/json":
        return int(current_app.config["API_MAX_JSON_BYTES"])
    return None


def _refuse_deep_json() -> None:
    """A JSON API body nested too deep is a 400 here: webargs parses bodies with the standard
    library, whose recursion on 100,000 brackets was a 500. Other malformed JSON is left to
    webargs' own 400. (Callbacks and webhooks parse with the limit themselves.)"""
    try:
        jsonsafe.loads(request.get_data(cache=True), exact_numbers=False)
    except jsonsafe.JSONTooDeep as exc:
        raise ValidationError(str(exc)) from None
    except jsonsafe.JSONRejected:
        return


def init_app(app: Flask) -> None:
    app.json = jsonsafe.LimitedJSONProvider(app)

    @app.before_request
    def _body_size_gate():
        """413 before anything reads the body: at once when Content-Length says so, and
        while reading when it does not (chunked)."""
        limit = _body_limit()
        if limit is None:
            return
        request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            raise RequestEntityTooLarge(f"The body is larger than {limit} bytes")
        if (
            request.is_json
            and request.content_length
            and not request.path.startswith(_MACHINE_BODIES)
        ):
            _refuse_deep_json()

    @app.before_request
    def _maintenance_gate():
        path = request.path
        if not path.startswith("/api/") or path.startswith(_MAINTENANCE_EXEMPT):
            return
        if request.method == "OPTIONS":
            return
        state = maintenance_state()
        if state["enabled"]:
            raise MaintenanceMode(state["message"] or "The casino is under maintenance")

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if current_app.config["ENV"] == "production":
            headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if request.path.startswith("/api/") and "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response
