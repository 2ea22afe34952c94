"""The player's loyalty points, level and history (points are not money)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.bonus import loyalty, redemption
from app.core.errors import ValidationError
from app.core.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from app.core.idempotency import idempotent, request_key
from app.core.schemas import Amount, PageArgs, envelope_of
from app.identity.auth import login_required, permission_required, player_required

blp = Blueprint("loyalty", __name__, url_prefix="/api/user", description="Loyalty points")
redeem_blp = Blueprint(
    "loyalty_rewards", __name__, url_prefix="/api/loyalty", description="Loyalty rewards"
)
admin_blp = Blueprint(
    "admin_loyalty", __name__, url_prefix="/api/admin/loyalty", description="Loyalty rewards"
)


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
    points = fields.Integer(metadata={"description": "spendable points"})
    earned_points = fields.Integer(metadata={"description": "points earned: the level follows"})
    redeemed_points = fields.Integer()
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


class RewardSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    points = fields.Integer()
    kind = fields.String(metadata={"description": "bonus | free_spins"})
    currency = fields.String()
    bonus_amount = fields.String(allow_none=True)
    free_spins = fields.Integer(allow_none=True)
    free_spin_value = fields.String(allow_none=True)
    game_id = fields.Integer(allow_none=True)
    wagering_multiplier = fields.Integer()
    bonus_valid_days = fields.Integer()
    affordable = fields.Boolean()
    points_missing = fields.Integer()


class CatalogueSchema(Schema):
    points = fields.Integer()
    items = fields.List(fields.Nested(RewardSchema))


class RedeemSchema(Schema):
    reward = fields.Raw(
        required=True, metadata={"description": "the reward's code or id (from the catalogue)"}
    )


class RedemptionSchema(Schema):
    id = fields.Integer()
    reward = fields.Nested(RewardSchema)
    points_spent = fields.Integer()
    bonus = fields.Dict(allow_none=True)
    loyalty = fields.Dict()
    created_at = fields.String()


@redeem_blp.route("/redemptions")
class Redemptions(MethodView):
    @login_required
    @redeem_blp.response(200, envelope_of(CatalogueSchema))
    def get(self):
        """The redemption catalogue, cheapest first, with your spendable points and, per item,
        ``affordable`` and ``points_missing``."""
        return {"data": redemption.catalogue(g.user.id)}


@redeem_blp.route("/redeem")
class Redeem(MethodView):
    @player_required
    @redeem_blp.arguments(RedeemSchema)
    @idempotent("loyalty.redeem")
    @redeem_blp.response(201, envelope_of(RedemptionSchema))
    @redeem_blp.doc(parameters=[IDEMPOTENCY_KEY])
    def post(self, data):
        """Spend points on a reward: the points are taken and the bonus (bonus money or free
        spins) granted in one transaction. ``Idempotency-Key`` header: a retry is a no-op.
        Refusals change nothing: 404 unknown reward, 409 ``INSUFFICIENT_POINTS``, 409
        ``BONUS_OPEN``, 403 ``SELF_EXCLUDED`` / ``REWARD_NOT_AVAILABLE``."""
        reward = data["reward"]
        if not isinstance(reward, int | str) or isinstance(reward, bool):
            raise ValidationError.field("reward", "A reward code or id")
        return {"data": redemption.redeem(g.user, reward, request_key=request_key())}


class RewardUpsertSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_-]{1,32}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    points = fields.Integer(required=True, validate=validate.Range(min=1, max=10**12))
    promotion_id = fields.Integer(required=True)
    bonus_amount = Amount(load_default=None)
    active = fields.Boolean(load_default=True)


@admin_blp.route("/rewards")
class AdminRewards(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.response(200, envelope_of(RewardSchema, many=True))
    def get(self):
        """The redemption catalogue (active items)."""
        return {"data": redemption.catalogue(None)["items"]}

    @permission_required("promotions.manage")
    @admin_blp.arguments(RewardUpsertSchema)
    @admin_blp.response(201, envelope_of(RewardSchema))
    def put(self, data):
        """Create or update (by ``code``) a reward: ``points`` buy ``bonus_amount`` of bonus money
        on the terms of ``promotion_id``, or its spins for a ``free_spins`` promotion;
        ``active: false`` withdraws it (audited)."""
        return {"data": redemption.admin_put(data, g.user)}
