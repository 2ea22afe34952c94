"""Game catalog, favorites and launch: ``/api/games...``."""

from __future__ import annotations

from typing import Any

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.core.schemas import Currency, PageMetaSchema, envelope_of
from app.identity.auth import player_required
from app.play import games

blp = Blueprint("games", __name__, url_prefix="/api/games", description="Games")


class GameSchema(Schema):
    id = fields.Integer()
    external_id = fields.String()
    name = fields.String()
    slug = fields.String(allow_none=True)
    provider = fields.String()
    provider_code = fields.String()
    category = fields.String(allow_none=True)
    type = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    rtp = fields.String(allow_none=True, metadata={"example": "96.50"})
    volatility = fields.String(allow_none=True)
    min_bet = fields.String()
    max_bet = fields.String()
    thumbnail = fields.String(allow_none=True)
    banner = fields.String(allow_none=True)
    is_featured = fields.Boolean()
    is_new = fields.Boolean()
    is_hot = fields.Boolean()
    has_demo = fields.Boolean()
    play_count = fields.Integer()
    favorite_count = fields.Integer()
    is_favorite = fields.Boolean()


class GameArgs(Schema):
    """Unknown filters are refused (400), never silently ignored."""

    provider = fields.String(metadata={"description": "Provider code or name"})
    category = fields.String(metadata={"description": "Category slug or name"})
    featured = fields.Boolean()
    new = fields.Boolean()
    hot = fields.Boolean()
    # The platform guide's names for the same three filters.
    is_featured = fields.Boolean(metadata={"description": "Same as featured"})
    is_new = fields.Boolean(metadata={"description": "Same as new"})
    is_hot = fields.Boolean(metadata={"description": "Same as hot"})
    type = fields.String()
    search = fields.String(validate=validate.Length(max=100))
    page = fields.Integer(validate=validate.Range(min=1, max=100_000))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(validate=validate.Range(min=0, max=10_000_000))

    @validates_schema
    def _one_spelling(self, data: dict[str, Any], **_kw: Any) -> None:
        for name in ("featured", "new", "hot"):
            alias = f"is_{name}"
            if name in data and alias in data and data[name] != data[alias]:
                raise ValidationError(f"{name} and {alias} disagree", field_name=alias)


def _flag(args: dict[str, Any], name: str) -> bool | None:
    value = args.get(name)
    return args.get(f"is_{name}") if value is None else value


class GamePageMeta(PageMetaSchema):
    offset = fields.Integer()


class GamePage(Schema):
    success = fields.Constant(True)
    data = fields.List(fields.Nested(GameSchema))
    meta = fields.Nested(GamePageMeta)


class ProviderSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    logo_url = fields.String(allow_none=True)
    currencies = fields.List(fields.String())


class CategorySchema(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    icon = fields.String(allow_none=True)
    games_count = fields.Integer()


class PlayArgs(Schema):
    demo = fields.Boolean(load_default=False)
    currency = Currency()
    lang = fields.String(validate=validate.Length(max=8))


class PlayByBodyArgs(PlayArgs):
    game_id = fields.Integer(required=True)


class LaunchSchema(Schema):
    launch_url = fields.String()
    session_token = fields.String()
    expires_at = fields.DateTime()
    demo = fields.Boolean()
    currency = fields.String()
    game_id = fields.Integer()


class FavoriteArgs(Schema):
    game_id = fields.Integer(required=True)


class FavoriteStateSchema(Schema):
    game_id = fields.Integer()
    is_favorite = fields.Boolean()


def _page(args) -> tuple[int, int, int]:
    limit = args["limit"]
    if args.get("offset") is not None:
        offset = args["offset"]
        page = offset // limit + 1
    else:
        page = args.get("page") or 1
        offset = (page - 1) * limit
    return page, limit, offset


@blp.route("")
class Games(MethodView):
    @blp.arguments(GameArgs, location="query", unknown=RAISE)
    @blp.response(200, GamePage)
    def get(self, args):
        """Active games (filters: provider, category, featured/is_featured, new/is_new,
        hot/is_hot, type, search); an unknown filter is a 400."""
        page, limit, offset = _page(args)
        f = games.GameFilter(
            provider=args.get("provider"),
            category=args.get("category"),
            featured=_flag(args, "featured"),
            new=_flag(args, "new"),
            hot=_flag(args, "hot"),
            type=args.get("type"),
            search=args.get("search"),
        )
        rows, total = games.search_games(f, offset=offset, limit=limit)
        return {
            "data": [games.game_json(x) for x in rows],
            "meta": {"page": page, "limit": limit, "total": total, "offset": offset},
        }


@blp.route("/featured")
class Featured(MethodView):
    @blp.arguments(GameArgs, location="query")
    @blp.response(200, GamePage)
    def get(self, args):
        """Featured active games."""
        page, limit, offset = _page(args)
        rows, total = games.search_games(
            games.GameFilter(
                featured=True, provider=args.get("provider"), category=args.get("category")
            ),
            offset=offset,
            limit=limit,
        )
        return {
            "data": [games.game_json(x) for x in rows],
            "meta": {"page": page, "limit": limit, "total": total, "offset": offset},
        }


@blp.route("/providers")
class Providers(MethodView):
    @blp.response(200, envelope_of(ProviderSchema, many=True))
    def get(self):
        """Active game providers."""
        return {
            "data": [
                games.provider_json(p, staff=False) for p in games.list_providers(active_only=True)
            ]
        }


@blp.route("/categories")
class Categories(MethodView):
    @blp.response(200, envelope_of(CategorySchema, many=True))
    def get(self):
        """Game categories with their number of active games."""
        return {"data": games.list_categories()}


@blp.route("/<int:game_id>")
class GameDetail(MethodView):
    @blp.response(200, envelope_of(GameSchema))
    def get(self, game_id: int):
        """One active game."""
        return {"data": games.game_json(games.get_game(game_id))}


@blp.route("/favorites")
class Favorites(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, envelope_of(GameSchema, many=True))
    def get(self):
        """The player's favorite games, newest first."""
        return {"data": [games.game_json(x, favorite=True) for x in games.favorites(g.user.id)]}


@blp.route("/favorite")
class FavoriteToggle(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(FavoriteArgs)
    @blp.response(200, envelope_of(FavoriteStateSchema))
    def post(self, args):
        """Toggle a game in the player's favorites; answers the new state."""
        state = games.toggle_favorite(g.user.id, args["game_id"])
        return {"data": {"game_id": args["game_id"], "is_favorite": state}}


@blp.route("/favorite/<int:game_id>")
class FavoriteRemove(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, envelope_of(FavoriteStateSchema))
    def delete(self, game_id: int):
        """Remove a game from the player's favorites (idempotent)."""
        games.remove_favorite(g.user.id, game_id)
        return {"data": {"game_id": game_id, "is_favorite": False}}


def _launch(game_id: int, args: dict):
    launch = games.launch(
        g.user,
        game_id,
        demo=args.get("demo", False),
        currency=args.get("currency"),
        lang=args.get("lang"),
        ip=request.remote_addr,
    )
    return {
        "data": {
            "launch_url": launch.launch_url,
            "session_token": launch.session_token,
            "expires_at": launch.expires_at,
            "demo": launch.demo,
            "currency": launch.currency,
            "game_id": launch.game_id,
        }
    }


@blp.route("/play/<int:game_id>")
class Play(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(PlayArgs, required=False)
    @blp.response(200, envelope_of(LaunchSchema))
    def post(self, args, game_id: int):
        """Open a game session: `{launch_url, session_token, expires_at, demo}`."""
        return _launch(game_id, args or {})


@blp.route("/play")
class PlayByBody(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(PlayByBodyArgs)
    @blp.response(200, envelope_of(LaunchSchema))
    def post(self, args):
        """Same as `/play/<id>` with `game_id` in the body."""
        return _launch(args["game_id"], args)
