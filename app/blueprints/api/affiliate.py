"""Referral / affiliate statistics for the signed-in referrer or agent."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.auth import login_required
from app.errors import AccessDenied
from app.models.user import AGENT, PLAYER
from app.schemas import PageArgs, envelope_of, page_meta
from app.services import affiliates

blp = Blueprint("affiliate", __name__, url_prefix="/api", description="Affiliates and referrals")


class MoneyRowSchema(Schema):
    currency = fields.String()
    amount = fields.String()


class AffiliateStatsSchema(Schema):
    referral_code = fields.String(allow_none=True)
    referral_link = fields.String(allow_none=True)
    is_agent = fields.Boolean()
    referrals = fields.Integer()
    qualified_referrals = fields.Integer()
    deposits = fields.List(fields.Nested(MoneyRowSchema))
    wagered = fields.List(fields.Nested(MoneyRowSchema))
    ggr = fields.List(fields.Nested(MoneyRowSchema))
    commissions = fields.List(fields.Nested(MoneyRowSchema))


class ReferralSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    country = fields.String(allow_none=True)
    joined_at = fields.String()
    last_login_at = fields.String(allow_none=True)
    qualified = fields.Boolean()
    deposits_count = fields.Integer()
    first_deposit_at = fields.String(allow_none=True)
    via = fields.String()


def _referrer():
    # Players refer friends; Agents manage their players. Other staff have no referrals.
    if g.user.role_id not in (PLAYER, AGENT):
        raise AccessDenied("Referral statistics are for players and agents")
    return g.user


@blp.route("/affiliate/stats")
class Stats(MethodView):
    @login_required
    @blp.response(200, envelope_of(AffiliateStatsSchema))
    def get(self):
        """Your referral code and link, referrals, qualified referrals, their activity and
        the commissions the ledger paid you."""
        return {"data": affiliates.stats(_referrer())}


@blp.route("/affiliate/referrals")
class Referrals(MethodView):
    @login_required
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(ReferralSchema, many=True))
    def get(self, args):
        """The players you referred (or manage, as an agent), newest first."""
        rows, total = affiliates.referrals(_referrer(), args["page"], args["limit"])
        return {"data": rows, "meta": page_meta(args["page"], args["limit"], total)}
