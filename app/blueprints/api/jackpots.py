"""``/api/jackpots`` (public) and ``/api/admin/jackpots`` (staff, ``promotions.manage``)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core.schemas import Amount, Currency, envelope_of
from app.identity.auth import permission_required
from app.prizes import jackpots

blp = Blueprint("jackpots", __name__, url_prefix="/api/jackpots", description="Jackpots")
admin_blp = Blueprint(
    "admin_jackpots", __name__, url_prefix="/api/admin/jackpots", description="Staff: jackpots"
)


class JackpotSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    tier = fields.String(allow_none=True)
    group = fields.String(allow_none=True)
    currency = fields.String()
    amount = fields.String()
    amount_minor = fields.Integer()
    seed = fields.String()
    cap = fields.String(allow_none=True)
    must_drop_by = fields.String(allow_none=True)
    drop_commitment = fields.String(allow_none=True)
    drop_deadline = fields.String(allow_none=True)
    drop_time_commitment = fields.String(allow_none=True)
    contribution_percent = fields.String()
    hit_odds = fields.String(allow_none=True)
    min_bet = fields.String()
    game_ids = fields.List(fields.Integer(), allow_none=True)
    cycle = fields.Integer()
    status = fields.String()


class WinSchema(Schema):
    id = fields.Integer()
    pool_id = fields.Integer()
    cycle = fields.Integer()
    currency = fields.String()
    amount = fields.String(allow_none=True)
    trigger = fields.String()
    status = fields.String()
    evidence = fields.Dict()
    transaction_id = fields.Integer(allow_none=True)
    won_at = fields.String()
    user_id = fields.Integer()
    actor_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)


class JackpotDetailSchema(JackpotSchema):
    wins = fields.List(fields.Nested(WinSchema))


class ActiveArgs(Schema):
    currency = Currency()


class PoolWriteSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=120))
    status = fields.String(validate=validate.OneOf(("active", "paused")))
    tier = fields.String(allow_none=True, validate=validate.Length(max=20))
    group_code = fields.String(allow_none=True, validate=validate.Length(max=40))
    seed_amount = Amount()
    contribution_percent = Amount()
    cap_amount = Amount(allow_none=True)
    must_drop_by = Amount(allow_none=True)
    hit_odds = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    min_bet = Amount()
    game_ids = fields.List(fields.Integer(), allow_none=True)
    #: Must drop by time: seconds or "90m", "24h", "7d" (60 s to 366 days); null = off.
    must_drop_within = fields.Raw(allow_none=True)
    #: The game provider allowed to report wins of this pool (``jackpot_win``); null = none.
    provider_id = fields.Integer(allow_none=True)


class PoolCreateSchema(PoolWriteSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    currency = Currency(required=True)
    contribution_percent = Amount(required=True)


class PayoutSchema(Schema):
    user_id = fields.Integer(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


@blp.route("/active")
class ActiveJackpots(MethodView):
    @blp.arguments(ActiveArgs, location="query")
    @blp.response(200, envelope_of(JackpotSchema, many=True))
    def get(self, args):
        """Active pools with their current amounts (``?currency=EUR`` to filter)."""
        pools = jackpots.active_pools(args.get("currency"))
        return {"data": [jackpots.pool_json(p) for p in pools]}


@blp.route("/<int:pool_id>")
class JackpotDetail(MethodView):
    @blp.response(200, envelope_of(JackpotDetailSchema))
    def get(self, pool_id: int):
        """One pool: amount, must-drop commitment and its history of wins."""
        pool = jackpots.get_pool(pool_id)
        data = jackpots.pool_json(pool)
        data["wins"] = [jackpots.win_json(w) for w in jackpots.wins_of(pool.id)]
        return {"data": data}


@admin_blp.route("")
class AdminJackpots(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.response(200, envelope_of(JackpotSchema, many=True))
    def get(self):
        """Every pool, paused ones included."""
        return {"data": [jackpots.pool_json(p) for p in jackpots.all_pools()]}

    @permission_required("promotions.manage")
    @admin_blp.arguments(PoolCreateSchema)
    @admin_blp.response(201, envelope_of(JackpotSchema))
    def post(self, data):
        """Create a pool (audited)."""
        pool = jackpots.create_pool(data, actor=g.user)
        return {"data": jackpots.pool_json(pool)}


@admin_blp.route("/<int:pool_id>")
class AdminJackpot(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.response(200, envelope_of(JackpotDetailSchema))
    def get(self, pool_id: int):
        """One pool with its wins (winners included)."""
        pool = jackpots.get_pool(pool_id)
        data = jackpots.pool_json(pool)
        data["wins"] = [jackpots.win_json(w, staff=True) for w in jackpots.wins_of(pool.id)]
        return {"data": data}

    @permission_required("promotions.manage")
    @admin_blp.arguments(PoolWriteSchema)
    @admin_blp.response(200, envelope_of(JackpotSchema))
    def put(self, data, pool_id: int):
        """Change a pool (audited); a new seed or must-drop bound redraws the drop point."""
        pool = jackpots.update_pool(pool_id, data, actor=g.user)
        return {"data": jackpots.pool_json(pool)}


@admin_blp.route("/<int:pool_id>/payout")
class AdminJackpotPayout(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.arguments(PayoutSchema)
    @admin_blp.response(201, envelope_of(WinSchema))
    def post(self, data, pool_id: int):
        """Pay the whole current amount to a player (Admin only, audited)."""
        win = jackpots.manual_payout(pool_id, data["user_id"], actor=g.user, reason=data["reason"])
        return {"data": jackpots.win_json(win, staff=True)}
