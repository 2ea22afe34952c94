"""Referral / affiliate statistics, affiliate applications and commission statements for the
signed-in referrer or agent."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.affiliates import commissions
from app.affiliates import program as affiliates
from app.affiliates.models import APPLICATION_CHANNELS
from app.core.errors import AccessDenied
from app.core.schemas import PageArgs, envelope_of, page_meta
from app.identity.auth import login_required
from app.identity.models import AGENT, PLAYER

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


class ApplyArgs(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(APPLICATION_CHANNELS))
    website = fields.String(load_default=None, validate=validate.Length(max=255))
    audience = fields.String(load_default=None, validate=validate.Length(max=120))
    message = fields.String(load_default=None, validate=validate.Length(max=2000))


class ApplicationSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String(allow_none=True)
    status = fields.String()
    channel = fields.String()
    website = fields.String(allow_none=True)
    audience = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    reviewed_by_id = fields.Integer(allow_none=True)
    reviewed_at = fields.String(allow_none=True)
    created_at = fields.String()


class CommissionStatementSchema(Schema):
    id = fields.Integer()
    agent_id = fields.Integer()
    period_start = fields.String()
    period_end = fields.String()
    currency = fields.String()
    players = fields.Integer()
    stakes = fields.String()
    refunds = fields.String()
    wins = fields.String()
    bonus_cost = fields.String()
    ngr = fields.String()
    carry_in = fields.String()
    commission_l1 = fields.String()
    carry_out = fields.String()
    ngr_level2 = fields.String()
    carry_in_level2 = fields.String()
    commission_l2 = fields.String()
    carry_out_level2 = fields.String()
    cpa_count = fields.Integer()
    cpa_total = fields.String()
    total = fields.String()
    plan = fields.Dict(allow_none=True)
    created_at = fields.String()


@blp.route("/affiliate/apply")
class Apply(MethodView):
    @login_required
    @blp.arguments(ApplyArgs)
    @blp.response(201, envelope_of(ApplicationSchema))
    def post(self, args):
        """Apply to become an agent (one pending application at a time; staff review it)."""
        if g.user.role_id != PLAYER:
            raise AccessDenied("Only player accounts can apply")
        row = affiliates.apply(g.user, **args)
        return {"data": affiliates.application_json(row)}, 201


@blp.route("/affiliate/applications")
class MyApplications(MethodView):
    @login_required
    @blp.response(200, envelope_of(ApplicationSchema, many=True))
    def get(self):
        """Your affiliate applications and their decisions, newest first."""
        rows = affiliates.my_applications(_referrer())
        return {"data": [affiliates.application_json(r) for r in rows]}


@blp.route("/affiliate/commissions")
class Commissions(MethodView):
    @login_required
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(CommissionStatementSchema, many=True))
    def get(self, args):
        """Your commission statements (agents), newest period first."""
        rows, total = commissions.statements(_referrer().id, args["page"], args["limit"])
        return {
            "data": [commissions.statement_json(r) for r in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }
