"""The application factory: configuration, extensions, blueprints, CLI. Nothing else.

``create_app`` never touches the database or the network: migrations run from the CLI
(``flask db upgrade``), data from ``flask jackpotx seed-demo``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.core import queues as _queues
from app.core.config import load_config, production_warnings


def create_app(config: dict[str, Any] | None = None) -> Flask:
    settings = load_config(**(config or {}))
    app = Flask(__name__, instance_path=settings["INSTANCE_DIR"])
    # The embedded SQLite file, uploads and the dev mail folder live here.
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(settings)
    app.config.update(
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        RATELIMIT_STORAGE_URI=settings["REDIS_URL"] or "memory://",
        RATELIMIT_DEFAULT=settings["RATE_LIMIT_API"],
        RATELIMIT_HEADERS_ENABLED=True,
        # Redis down: each process counts in memory (the same limits) until Redis answers
        # again, and a failure writing the headers never turns a committed answer into a 500.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 0.5, "socket_connect_timeout": 0.5},
        # The limiter would put its window's reset in Retry-After on every answer (and raise
        # a 503's "retry in 2 s" to a minute): its figure goes in its own header; Retry-After
        # is set by the 429 and 503 answers themselves (app.core.errors).
        RATELIMIT_HEADER_RETRY_AFTER="X-RateLimit-Retry-After",
        JSON_SORT_KEYS=False,
    )
    # Provider callbacks without Flask's request cycle (app/blueprints/provider/lane.py),
    # right above Flask itself: under ProxyFix, which resolves the caller's address first.
    from app.blueprints.provider import lane

    lane.install(app)
    if settings["PROXY_COUNT"]:
        n = settings["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    from app import hooks, realtime
    from app.blueprints import docs, register_blueprints
    from app.cli import register_cli
    from app.core import errors, i18n, metrics, observability, security
    from app.core.extensions import (
        api,
        cors,
        csrf,
        db,
        jwt,
        limiter,
        login_manager,
        migrate,
        redis_store,
    )
    from app.identity import auth

    observability.configure_logging(settings["LOG_LEVEL"])
    if settings["ENV"] == "production":
        for warning in production_warnings(settings):
            logging.getLogger("jackpotx.config").warning("production: %s", warning)
    observability.init_app(app)
    metrics.init_app(app)  # first request hooks: the gates' answers are timed too
    db.init_app(app)
    from app import models  # noqa: F401 - registers every table on the metadata
    from app.core import prepared
    from app.core.db import install_timeouts

    with app.app_context():
        install_timeouts(app)
        prepared.install(app)

    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    redis_store.init_app(app)
    _queues.init_app(app)
    jwt.init_app(app)
    auth.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    cors_options: dict[str, Any] = {
        "resources": {r"/api/*": {"origins": settings["CORS_ORIGINS"]}},
        "expose_headers": ["X-Correlation-ID", "Retry-After", "Idempotent-Replayed", "Allow"],
        "allow_headers": [
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "X-Correlation-ID",
            "X-Device-Fingerprint",
            "X-Device-Id",
        ],
        "supports_credentials": False,
    }
    cors.init_app(app, **cors_options)
    app.extensions["jx_cors_options"] = cors_options  # the callback lane's CORS headers
    realtime.init_app(app)
    api.init_app(
        app,
        spec_kwargs={
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "providerSignature": {
                        "type": "apiKey",
                        "in": "header",
                        "name": "X-Signature",
                    },
                }
            }
        },
    )
    # After api.init_app: our envelope handlers replace flask-smorest's defaults.
    errors.init_app(app)
    i18n.init_app(app)
    security.init_app(app)
    docs.init_app(app)
    register_blueprints(app)
    hooks.install()
    register_cli(app)
    return app


# Job functions run outside a request (RQ workers) build their app with this factory.
_queues.set_app_factory(create_app)
