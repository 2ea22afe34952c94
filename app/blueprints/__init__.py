"""Blueprint registration: the one list of everything the app serves."""

from __future__ import annotations

from flask import Flask

from app.extensions import api as rest_api
from app.extensions import csrf, limiter


def register_blueprints(app: Flask) -> None:
    from app.blueprints import console, health
    from app.blueprints.api import admin_auth, admin_users, auth, system, user_account
    from app.blueprints.api.identity_common import init_access_gate

    app.register_blueprint(health.bp)
    limiter.exempt(health.bp)
    csrf.exempt(health.bp)
    # The back office: session cookie + CSRF token on every form (never exempted).
    app.register_blueprint(console.bp)

    init_access_gate(app)
    identity_blps = (auth.blp, user_account.blp, admin_auth.blp, admin_users.blp)
    for blp in (system.blp, *identity_blps):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies, so no CSRF surface
        rest_api.register_blueprint(blp)
