"""Blueprint registration: the one list of everything the app serves."""

from __future__ import annotations

from flask import Flask

from app.extensions import api as rest_api
from app.extensions import csrf, limiter


def register_blueprints(app: Flask) -> None:
    from app.blueprints import health
    from app.blueprints.api import admin_jobs, notifications, system

    app.register_blueprint(health.bp)
    limiter.exempt(health.bp)
    csrf.exempt(health.bp)

    for blp in (system.blp, notifications.blp, admin_jobs.blp):
        csrf.exempt(blp)  # JSON API: bearer tokens, no cookies, so no CSRF surface
        rest_api.register_blueprint(blp)
