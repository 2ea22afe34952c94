"""``GET /api/status``: what a player app checks before anything else (maintenance)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.core import settings
from app.core.schemas import envelope_of

blp = Blueprint("system", __name__, url_prefix="/api", description="Platform status")


class StatusSchema(Schema):
    maintenance = fields.Boolean(required=True)
    message = fields.String(allow_none=True)
    version = fields.String()


@blp.route("/status")
class Status(MethodView):
    @blp.response(200, envelope_of(StatusSchema))
    def get(self):
        """Platform status: maintenance mode and version."""
        from flask import current_app

        state = settings.maintenance_state()
        return {
            "data": {
                "maintenance": state["enabled"],
                "message": state["message"],
                "version": current_app.config["VERSION"],
            }
        }
