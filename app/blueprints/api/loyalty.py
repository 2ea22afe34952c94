"""The player's loyalty points, level and history (points are not money)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.bonus import loyalty
from app.core.schemas import PageArgs, envelope_of
from app.identity.auth import login_required

blp = Blueprint("loyalty", __name__, url_prefix="/api/user", description="Loyalty points")


class LoyaltyLevelSchema(Schema):
    code = fields.String()
    name = fields.String()
    min_points = fields.Integer()


class LoyaltyEventSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    points = fields.Integer()
    wagered = fields.String()
    currency = fields.String()
    created_at = fields.String()


class LoyaltySchema(Schema):
    points = fields.Integer()
    level = fields.Nested(LoyaltyLevelSchema, allow_none=True)
    next_level = fields.Nested(LoyaltyLevelSchema, allow_none=True)
    points_to_next_level = fields.Integer(allow_none=True)
    progress_percent = fields.Integer()
    levels = fields.List(fields.Nested(LoyaltyLevelSchema))
    points_per_unit = fields.Integer()
    history = fields.List(fields.Nested(LoyaltyEventSchema))
    history_total = fields.Integer()


@blp.route("/loyalty")
class Loyalty(MethodView):
    @login_required
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(LoyaltySchema))
    def get(self, args):
        """Points, level, progress to the next level, the level table and the points history
        (``page``/``limit`` page the history)."""
        return {"data": loyalty.summary(g.user.id, args["page"], args["limit"])}
