"""Response hardening and request gates shared by every blueprint."""

from __future__ import annotations

from flask import Flask, current_app, request

from app.core.errors import MaintenanceMode
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


def init_app(app: Flask) -> None:
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
