"""Staff games API: catalog, providers, imports (permission ``games.manage``)."""

from __future__ import annotations

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.games import GameSchema
from app.core.errors import ValidationError
from app.core.schemas import PageArgs, PageMetaSchema, envelope_of, page_meta
from app.identity.auth import permission_required
from app.play import game_lists, games, media
from app.play.models import GAME_STATUSES, PROVIDER_PROTOCOLS

blp = Blueprint("admin_games", __name__, url_prefix="/api/admin/games", description="Staff: games")


class AdminGameSchema(GameSchema):
    status = fields.String()
    sort_order = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class AdminGameArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(GAME_STATUSES))
    provider = fields.String()
    category = fields.String()
    search = fields.String()


class AdminGamePage(Schema):
    success = fields.Constant(True)
    data = fields.List(fields.Nested(AdminGameSchema))
    meta = fields.Nested(PageMetaSchema)


class GameUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    category = fields.String()
    type = fields.String()
    description = fields.String()
    is_featured = fields.Boolean()
    is_new = fields.Boolean()
    is_hot = fields.Boolean()
    has_demo = fields.Boolean()
    min_bet = fields.Raw()
    max_bet = fields.Raw()
    rtp = fields.Raw(allow_none=True)
    volatility = fields.String()
    thumbnail = fields.String()
    banner_url = fields.String()
    status = fields.String(validate=validate.OneOf(GAME_STATUSES))
    sort_order = fields.Integer()


class AdminProviderSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    logo_url = fields.String(allow_none=True)
    currencies = fields.List(fields.String())
    protocol = fields.String()
    active = fields.Boolean()
    ip_allowlist = fields.List(fields.String())
    launch_url = fields.String(allow_none=True)
    api_url = fields.String(allow_none=True)
    stale_round_policy = fields.String()
    created_at = fields.DateTime()


class ProviderCreateSchema(Schema):
    code = fields.String(required=True)
    name = fields.String(required=True)
    secret = fields.String(
        load_only=True,
        validate=validate.Length(min=16),
        metadata={"description": "Shared-secret protocols (native, pragmatic)"},
    )
    peer_public_key = fields.String(
        load_only=True,
        data_key="public_key",
        metadata={"description": "Key-pair protocols (hub88): the aggregator's public key PEM"},
    )
    currencies = fields.List(fields.String())
    launch_url = fields.String(allow_none=True)
    api_url = fields.String(allow_none=True)
    protocol = fields.String(load_default="native", validate=validate.OneOf(PROVIDER_PROTOCOLS))
    ip_allowlist = fields.List(fields.String())
    stale_round_policy = fields.String(
        load_default="refund", validate=validate.OneOf(["refund", "close"])
    )
    active = fields.Boolean(load_default=True)


class ProviderUpdateSchema(Schema):
    name = fields.String()
    secret = fields.String(load_only=True, validate=validate.Length(min=16))
    peer_public_key = fields.String(load_only=True, data_key="public_key")
    currencies = fields.List(fields.String())
    launch_url = fields.String(allow_none=True)
    api_url = fields.String(allow_none=True)
    ip_allowlist = fields.List(fields.String())
    stale_round_policy = fields.String(validate=validate.OneOf(["refund", "close"]))
    active = fields.Boolean()


class ImportSchema(Schema):
    provider = fields.String(required=True, metadata={"description": "Provider code"})
    games = fields.Raw(
        required=True,
        metadata={"description": "The game list: an array, or the aggregator's envelope"},
    )
    format = fields.String(
        validate=validate.OneOf(list(game_lists.FORMATS)),
        load_default=None,
        metadata={"description": "The list's shape; default: the provider's protocol"},
    )


class ImportResultSchema(Schema):
    imported_count = fields.Integer()
    updated_count = fields.Integer()
    failed_count = fields.Integer()
    errors = fields.List(fields.Dict())
    games = fields.List(fields.Dict())


@blp.route("")
class AdminGames(MethodView):
    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(AdminGameArgs, location="query")
    @blp.response(200, AdminGamePage)
    def get(self, args):
        """Every game, any status (filters: status, provider, category, search)."""
        page, limit = args["page"], args["limit"]
        f = games.GameFilter(
            status=args.get("status"),
            provider=args.get("provider"),
            category=args.get("category"),
            search=args.get("search"),
        )
        rows, total = games.search_games(f, offset=(page - 1) * limit, limit=limit)
        return {
            "data": [games.game_json(x, staff=True) for x in rows],
            "meta": page_meta(page, limit, total),
        }


@blp.route("/<int:game_id>")
class AdminGame(MethodView):
    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, envelope_of(AdminGameSchema))
    def get(self, game_id: int):
        """One game, any status."""
        return {"data": games.game_json(games.get_game(game_id, include_inactive=True), staff=True)}

    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(GameUpdateSchema)
    @blp.response(200, envelope_of(AdminGameSchema))
    def put(self, args, game_id: int):
        """Change a game (status, flags, limits, RTP, category ...); audited."""
        game = games.update_game(game_id, args, actor=g.user)
        return {"data": games.game_json(game, staff=True)}


@blp.route("/<int:game_id>/image")
class AdminGameImage(MethodView):
    @permission_required("games.manage")
    @blp.doc(
        security=[{"bearerAuth": []}],
        requestBody={
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "kind": {
                                "type": "string",
                                "enum": list(media.KINDS),
                                "default": "thumbnail",
                            },
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                }
            }
        },
    )
    @blp.response(200, envelope_of(AdminGameSchema))
    def post(self, game_id: int):
        """Upload the game's thumbnail or banner (JPEG, PNG or WebP, validated by decoding;
        at most GAME_IMAGE_MAX_BYTES, 4096 px a side); the game then links /media/games/..."""
        upload = request.files.get("file")
        if upload is None:
            raise ValidationError.field("file", "A file is required")
        limit = int(current_app.config.get("GAME_IMAGE_MAX_BYTES", 2 * 1024 * 1024))
        data = upload.stream.read(limit + 1)
        kind = request.form.get("kind", "thumbnail")
        game = media.set_image(game_id, kind, data, actor=g.user)
        return {"data": games.game_json(game, staff=True)}


@blp.route("/providers")
class AdminProviders(MethodView):
    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, envelope_of(AdminProviderSchema, many=True))
    def get(self):
        """Every provider (secrets are never returned)."""
        return {"data": [games.provider_json(p) for p in games.list_providers(active_only=False)]}

    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ProviderCreateSchema)
    @blp.response(201, envelope_of(AdminProviderSchema))
    def post(self, args):
        """Register a provider and its callback secret (encrypted at rest); audited."""
        provider = games.create_provider(actor=g.user, **args)
        return {"data": games.provider_json(provider)}


@blp.route("/providers/<int:provider_id>")
class AdminProvider(MethodView):
    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ProviderUpdateSchema)
    @blp.response(200, envelope_of(AdminProviderSchema))
    def put(self, args, provider_id: int):
        """Change a provider: activate, rotate the secret, currencies, allow-list; audited."""
        return {"data": games.provider_json(games.update_provider(provider_id, args, actor=g.user))}


@blp.route("/import")
class ImportGames(MethodView):
    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ImportSchema)
    @blp.response(200, envelope_of(ImportResultSchema))
    def post(self, args):
        """Upsert a provider's games by external_id from its game list (``format``, default the
        provider's protocol); answers counts and per-item errors."""
        report = games.import_games(
            args["provider"], args["games"], format=args["format"], actor=g.user
        )
        return {
            "data": {
                "imported_count": report.imported,
                "updated_count": report.updated,
                "failed_count": report.failed,
                "errors": report.errors,
                "games": report.games,
            }
        }
