"""Routes that exist only in tests, to make the plumbing fail on purpose."""

from __future__ import annotations

from flask import Blueprint, Flask
from flask.views import MethodView
from flask_smorest import Blueprint as ApiBlueprint
from marshmallow import Schema, fields

from app.core.errors import Conflict


class _EchoSchema(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True)


def register_probe_routes(app: Flask) -> None:
    from app.core.extensions import api, limiter

    blp = ApiBlueprint("probe", __name__, url_prefix="/api/probe")

    @blp.route("/echo")
    class Echo(MethodView):
        @blp.arguments(_EchoSchema)
        def post(self, args):
            return {"success": True, "data": args}

    plain = Blueprint("probe_plain", __name__)

    @plain.get("/api/probe/boom")
    def boom():
        raise RuntimeError("secret internals: SELECT * FROM users")

    @plain.get("/api/probe/conflict")
    def conflict():
        raise Conflict("Already done")

    @plain.get("/api/probe/limited")
    @limiter.limit("3 per minute")
    def limited():
        return {"success": True, "data": None}

    app.register_blueprint(plain)
    api.register_blueprint(blp)
