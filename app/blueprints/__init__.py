"""Blueprint registration: the one list of everything the app serves."""

from __future__ import annotations

from flask import Flask

from app.extensions import api as rest_api
from app.extensions import csrf, limiter


def register_blueprints(app: Flask) -> None:
    from app.blueprints import health
    from app.blueprints.api import system

    app.register_blueprint(health.bp)
    limiter.exempt(health.bp)
    csrf.exempt(health.bp)

    for blp in (system.blp,):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies, so no CSRF surface
        rest_api.register_blueprint(blp)

    register_money_blueprints(app)


def register_money_blueprints(app: Flask) -> None:
    """Wallet, games and the provider callback endpoint (issue 4)."""
    from flask import current_app, request

    from app.blueprints.api import admin_games, admin_money, games, wallet
    from app.blueprints.provider import callbacks
    from app.extensions import client_ip

    for blp in (wallet.blp, games.blp, admin_money.blp, admin_games.blp):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies
        rest_api.register_blueprint(blp)

    # Providers sign every request and call at casino throughput: their own, high limit,
    # counted per provider and source address.
    limiter.limit(
        lambda: current_app.config["RATE_LIMIT_CALLBACK"],
        key_func=lambda: f"cb:{(request.view_args or {}).get('provider_code')}:{client_ip()}",
    )(callbacks.blp)
    csrf.exempt(callbacks.blp)  # signed server-to-server calls, no cookies
    rest_api.register_blueprint(callbacks.blp)
