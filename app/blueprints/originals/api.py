"""Studio JSON API: what the game pages call, plus the public verifier."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate, validates_schema
from marshmallow import ValidationError as MarshmallowError

from app.core.schemas import Amount
from app.originals import studio as service

blp = Blueprint(
    "originals-api",
    __name__,
    url_prefix="/originals",
    description="JxOriginals studio: game rounds, seeds and the provably fair verifier",
)


class StudioAnswerSchema(Schema):
    """``{"success": true, "data": ...}``: the studio's own answers (the game pages read them)."""

    success = fields.Constant(True, required=True)
    data = fields.Raw(required=True)


class VerifyArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    game = fields.String(required=True, validate=validate.Length(max=50))
    server_seed = fields.String(required=True, validate=validate.Length(min=1, max=128))
    client_seed = fields.String(required=True, validate=validate.Length(min=1, max=64))
    nonce = fields.Integer(required=True, validate=validate.Range(min=0, max=2**31 - 1))
    target = fields.String(validate=validate.Length(max=10))
    server_seed_hash = fields.String(validate=validate.Length(equal=64))


class OriginalsPlayArgs(Schema):
    #: Required unless ``free_round`` is given (a free spin plays with the grant's stake).
    stake = Amount()
    #: Dice only: roll-under target, 1.00-98.00.
    target = fields.Raw()
    #: One of the session's ``free_rounds`` ids: play a free spin.
    free_round = fields.String(validate=validate.Length(min=1, max=40))

    @validates_schema
    def _stake_or_free_round(self, data, **kwargs):
        if "stake" not in data and "free_round" not in data:
            raise MarshmallowError({"stake": ["stake is required (or free_round)"]})


class SeedArgs(Schema):
    client_seed = fields.String(allow_none=True)


@blp.route("/verify")
class Verify(MethodView):
    @blp.alt_response(200, schema=StudioAnswerSchema)
    @blp.arguments(VerifyArgs, location="query")
    def get(self, args):
        """Recompute an outcome from server seed, client seed and nonce (public)."""
        params = {"target": args["target"]} if args.get("target") else {}
        data = service.verify(
            args["game"],
            args["server_seed"],
            args["client_seed"],
            args["nonce"],
            params,
            args.get("server_seed_hash"),
        )
        return {"success": True, "data": data}


@blp.route("/api/sessions/<token>")
class SessionState(MethodView):
    @blp.alt_response(200, schema=StudioAnswerSchema)
    def get(self, token: str):
        """The game page's state: balance, committed seed hash, recent rounds."""
        return {"success": True, "data": service.session_state(token)}


@blp.route("/api/sessions/<token>/rounds")
class Rounds(MethodView):
    @blp.alt_response(201, schema=StudioAnswerSchema)
    @blp.arguments(OriginalsPlayArgs)
    def post(self, args, token: str):
        """Play one round: the bet, the outcome and the win settle through the wallet."""
        params = {"target": args["target"]} if "target" in args else {}
        data = service.play(token, args.get("stake"), params, args.get("free_round"))
        return {"success": True, "data": data}, 201


@blp.route("/api/sessions/<token>/seed")
class Seed(MethodView):
    @blp.alt_response(200, schema=StudioAnswerSchema)
    @blp.arguments(SeedArgs)
    def post(self, args, token: str):
        """Rotate the seed pair: reveal the server seed, commit a new one."""
        return {"success": True, "data": service.rotate_seed(token, args.get("client_seed"))}


@blp.route("/api/rounds/<round_ref>")
class Round(MethodView):
    @blp.alt_response(200, schema=StudioAnswerSchema)
    def get(self, round_ref: str):
        """One round with its seeds and, once revealed, an independent recomputation."""
        return {"success": True, "data": service.round_view(round_ref)}


@blp.route("/api/games")
class Games(MethodView):
    @blp.alt_response(200, schema=StudioAnswerSchema)
    def get(self):
        """The studio's game list, in the shape ``games import`` reads."""
        return {"success": True, "data": service.game_catalog()}
