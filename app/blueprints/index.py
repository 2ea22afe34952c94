"""``GET /``: what this server is and where to go next (API docs, back office, health), as
JSON, or as a small HTML page for a browser."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template_string, request

bp = Blueprint("index", __name__)

LINKS = (
    ("api_docs", "/api/docs", "API documentation (OpenAPI, try it out)"),
    ("openapi", "/api/openapi.json", "OpenAPI document"),
    ("admin", "/admin", "Back office (staff login with TOTP)"),
    ("health", "/health", "Health: database and Redis"),
    ("games", "/api/games", "Games catalog (JSON)"),
)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>JackpotX</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>JackpotX</h1>
<p>The casino backend is running ({{ env }}{% if embedded %}, embedded: SQLite, jobs in this
process{% endif %}).</p>
<ul>{% for _key, href, label in links %}<li><a href="{{ href }}">{{ label }}</a>
<code>{{ href }}</code></li>{% endfor %}</ul>
</body></html>"""


@bp.get("/")
def index():
    embedded = not current_app.config["REDIS_URL"]
    env = current_app.config["ENV"]
    # A browser asks for HTML first; curl's */* and API clients get JSON.
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return render_template_string(PAGE, links=LINKS, env=env, embedded=embedded)
    return jsonify(
        {
            "name": "JackpotX",
            "environment": env,
            "version": current_app.config["VERSION"],
            "embedded": embedded,
            "links": {key: href for key, href, _label in LINKS},
        }
    )
