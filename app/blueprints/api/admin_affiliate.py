"""Affiliates for staff: agents, applications, statistics, commission plans, the agent tree
and commission statements."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.affiliates import commissions
from app.affiliates import program as affiliates
from app.affiliates.models import APPLICATION_STATUSES
from app.blueprints.api.affiliate import (
    ApplicationSchema,
    CommissionStatementSchema,
    MoneyRowSchema,
)
from app.core.extensions import db
from app.core.schemas import ID_RANGE, Amount, Currency, PageArgs, envelope_of, page_meta
from app.identity.auth import permission_required
from app.identity.models import User

blp = Blueprint(
    "admin_affiliate",
    __name__,
    url_prefix="/api/admin/affiliate",
    description="Affiliates and agents (staff)",
)

READ, MANAGE = "affiliates.read", "affiliates.manage"


class AgentSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    status = fields.String()
    referral_code = fields.String(allow_none=True)
    parent_agent_id = fields.Integer(allow_none=True)
    players = fields.Integer()
    sub_agents = fields.Integer()
    plan = fields.String()
    created_at = fields.String()


class NewAgentArgs(Schema):
    user_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    application_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    parent_agent_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    reason = fields.String(load_default=None, validate=validate.Length(max=500))

    @validates_schema
    def _one_of(self, data, **_kw):
        if (data.get("user_id") is None) == (data.get("application_id") is None):
            raise ValidationError("Give either user_id or application_id", "user_id")


class ApplicationListArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(APPLICATION_STATUSES))


class ApplicationApproveArgs(Schema):
    parent_agent_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    reason = fields.String(load_default=None, validate=validate.Length(max=500))


class ApplicationRejectArgs(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class AgentStatsSchema(Schema):
    agent_id = fields.Integer()
    username = fields.String()
    parent_agent_id = fields.Integer(allow_none=True)
    referrals = fields.Integer()
    qualified = fields.Integer()
    deposits = fields.List(fields.Nested(MoneyRowSchema))
    ngr = fields.List(fields.Nested(MoneyRowSchema))
    commissions = fields.List(fields.Nested(MoneyRowSchema))


class PlanArgs(Schema):
    agent_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    revenue_share_percent = Amount(load_default=None)
    level2_share_percent = Amount(load_default=None)
    cpa_amount = Amount(load_default=None)
    cpa_currency = Currency(load_default=None)
    cpa_min_deposit = Amount(load_default=None)


class PlanSchema(Schema):
    id = fields.Integer()
    agent_id = fields.Integer(allow_none=True)
    revenue_share_percent = fields.String()
    level2_share_percent = fields.String()
    cpa_amount = fields.String()
    cpa_currency = fields.String()
    cpa_min_deposit = fields.String()


class PlanQuery(Schema):
    agent_id = fields.Integer(load_default=None, validate=validate.Range(min=1))


class EffectivePlanSchema(Schema):
    default = fields.Nested(PlanSchema, allow_none=True)
    agent = fields.Nested(PlanSchema, allow_none=True)
    effective = fields.Nested(PlanSchema, allow_none=True)


class TreeQuery(Schema):
    agent_id = fields.Integer(load_default=None, validate=validate.Range(min=1))


class TreePlayerSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    status = fields.String()
    joined_at = fields.String()


class TreeNodeSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    status = fields.String()
    level = fields.Integer()
    players_total = fields.Integer()
    players = fields.List(fields.Nested(TreePlayerSchema))
    sub_agents = fields.List(fields.Nested(lambda: TreeNodeSchema()))


class CommissionStatementQuery(PageArgs):
    agent_id = fields.Integer(load_default=None, validate=ID_RANGE)


def _page(rows, total, args):
    return {"data": rows, "meta": page_meta(args["page"], args["limit"], total)}


@blp.route("/agents")
class Agents(MethodView):
    @permission_required(READ)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(AgentSchema, many=True))
    def get(self, args):
        """Agents with their parent, player and sub-agent counts and plan kind."""
        rows, total = affiliates.list_agents(args["page"], args["limit"])
        return _page(rows, total, args)

    @permission_required(MANAGE)
    @blp.arguments(NewAgentArgs)
    @blp.response(201, envelope_of(AgentSchema))
    def post(self, args):
        """Make an existing player an agent (``user_id``), or approve an application
        (``application_id``); optional ``parent_agent_id`` makes them a sub-agent. Audited."""
        if args["application_id"] is not None:
            row = affiliates.decide_application(
                g.user,
                args["application_id"],
                approve=True,
                reason=args["reason"],
                parent_agent_id=args["parent_agent_id"],
            )
            user = db.session.get(User, row.user_id)
        else:
            user = affiliates.make_agent(
                g.user, args["user_id"], args["parent_agent_id"], args["reason"]
            )
        return {"data": affiliates.agents_json([user])[0]}, 201


@blp.route("/applications")
class Applications(MethodView):
    @permission_required(READ)
    @blp.arguments(ApplicationListArgs, location="query")
    @blp.response(200, envelope_of(ApplicationSchema, many=True))
    def get(self, args):
        """Affiliate applications, newest first (``?status=pending`` for the queue)."""
        rows, total = affiliates.list_applications(args["status"], args["page"], args["limit"])
        return _page([affiliates.application_json(r) for r in rows], total, args)


@blp.route("/applications/<int:application_id>/approve")
class ApproveApplication(MethodView):
    @permission_required(MANAGE)
    @blp.arguments(ApplicationApproveArgs)
    @blp.response(200, envelope_of(ApplicationSchema))
    def post(self, args, application_id):
        """Approve: the applicant becomes an Agent (optionally under ``parent_agent_id``)."""
        row = affiliates.decide_application(
            g.user,
            application_id,
            approve=True,
            reason=args["reason"],
            parent_agent_id=args["parent_agent_id"],
        )
        return {"data": affiliates.application_json(row)}


@blp.route("/applications/<int:application_id>/reject")
class RejectApplication(MethodView):
    @permission_required(MANAGE)
    @blp.arguments(ApplicationRejectArgs)
    @blp.response(200, envelope_of(ApplicationSchema))
    def post(self, args, application_id):
        """Reject with a reason (shown to the applicant)."""
        row = affiliates.decide_application(
            g.user, application_id, approve=False, reason=args["reason"]
        )
        return {"data": affiliates.application_json(row)}


@blp.route("/stats")
class Stats(MethodView):
    @permission_required(READ)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(AgentStatsSchema, many=True))
    def get(self, args):
        """Per agent: players, qualified players, deposits, NGR (all time, from the ledger) and
        commissions paid, per currency."""
        rows, total = affiliates.staff_stats(args["page"], args["limit"])
        return _page(rows, total, args)


@blp.route("/commission")
class Commission(MethodView):
    @permission_required(READ)
    @blp.arguments(PlanQuery, location="query")
    @blp.response(200, envelope_of(EffectivePlanSchema))
    def get(self, args):
        """The default plan, an agent's own plan (``?agent_id=``) and the one that applies."""
        default = affiliates.plan_for(None)
        own = None
        if args["agent_id"] is not None:
            effective = affiliates.plan_for(args["agent_id"])
            own = effective if effective is not None and effective.agent_id else None
        else:
            effective = default
        return {
            "data": {
                "default": affiliates.plan_json(default),
                "agent": affiliates.plan_json(own),
                "effective": affiliates.plan_json(effective),
            }
        }

    @permission_required(MANAGE)
    @blp.arguments(PlanArgs)
    @blp.response(200, envelope_of(PlanSchema))
    def put(self, args):
        """Set the default plan (no ``agent_id``) or one agent's plan: revenue share % of NGR
        (level 1), % of the sub-agents' players' NGR (level 2), CPA amount per referral whose
        first deposit is at least ``cpa_min_deposit``. Audited."""
        return {"data": affiliates.plan_json(affiliates.set_plan(g.user, args))}


@blp.route("/tree")
class Tree(MethodView):
    @permission_required(READ)
    @blp.arguments(TreeQuery, location="query")
    @blp.response(200, envelope_of(TreeNodeSchema, many=True))
    def get(self, args):
        """Agent -> sub-agents -> players (every top-level agent, or from ``?agent_id=``)."""
        return {"data": affiliates.tree(args["agent_id"])}


@blp.route("/commissions")
class Statements(MethodView):
    @permission_required(READ)
    @blp.arguments(CommissionStatementQuery, location="query")
    @blp.response(200, envelope_of(CommissionStatementSchema, many=True))
    def get(self, args):
        """Commission statements (all agents, or ``?agent_id=``), newest period first."""
        rows, total = commissions.statements(args["agent_id"], args["page"], args["limit"])
        return _page([commissions.statement_json(r) for r in rows], total, args)
