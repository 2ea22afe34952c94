"""Swagger UI at ``/api/docs`` from the files of the ``swagger-ui-bundle`` package (no CDN)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Flask, current_app, render_template, request, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from app.core.errors import envelope

bp = Blueprint("docs", __name__)


@bp.get("/api/docs")
@bp.get("/api/docs/")
def swagger_ui():
    return render_template("docs/swagger.html")


@bp.get("/api/docs/static/<path:filename>")
def swagger_static(filename: str):
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.before_request
    def _docs_password():
        """``API_DOCS_PASSWORD`` protects the docs and the OpenAPI document with Basic auth."""
        path = request.path
        if not (path.startswith("/api/docs") or path == "/api/openapi.json"):
            return None
        password = current_app.config["API_DOCS_PASSWORD"]
        if not password:
            return None
        given = request.authorization.password if request.authorization else ""
        if given and hmac.compare_digest(given.encode(), password.encode()):
            return None
        response = envelope(401, "AUTHENTICATION_ERROR", "The API documentation needs a password")
        response.headers["WWW-Authenticate"] = 'Basic realm="JackpotX API docs"'
        return response
