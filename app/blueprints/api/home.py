"""The lobby's home feed (token optional)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.core.schemas import envelope_of
from app.identity.auth import login_optional
from app.lobby import home

blp = Blueprint("home", __name__, url_prefix="/api", description="Home feed")


class HomeSchema(Schema):
    featured_games = fields.List(fields.Dict())
    new_games = fields.List(fields.Dict())
    hot_games = fields.List(fields.Dict())
    popular_games = fields.List(fields.Dict())
    promotions = fields.List(fields.Dict())
    big_wins = fields.List(fields.Dict())
    player = fields.Dict(allow_none=True)


@blp.route("/home")
class Home(MethodView):
    @login_optional
    @blp.response(200, envelope_of(HomeSchema))
    def get(self):
        """Games, promotions and big wins; with a token also balances, bonus and activity."""
        return {"data": home.feed(g.get("user"))}
