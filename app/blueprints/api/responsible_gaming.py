"""Responsible gaming (player and staff), AML risk flags and the player's account statement."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate, validates_schema
from marshmallow import ValidationError as SchemaError

from app.compliance import responsible_gaming as rg
from app.compliance import risk
from app.compliance.models import LIMIT_PERIODS, LIMIT_TYPES
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.core.money import MoneyError, format_minor, parse_minor
from app.core.schemas import Amount, Currency, PageArgs, envelope_of, page_meta
from app.identity.auth import login_required, permission_required, player_required
from app.identity.models import User
from app.wallet import statements

blp = Blueprint(
    "responsible_gaming",
    __name__,
    url_prefix="/api",
    description="Responsible gaming, risk flags and statements",
)


def limit_json(item: dict) -> dict:
    limit, value, used = item["limit"], item["value"], item["used"]
    money = limit.limit_type != "session_time"

    def show(v):
        if v is None:
            return None
        return format_minor(v, limit.currency) if money else v

    pending = item["pending"]
    return {
        "id": limit.id,
        "type": limit.limit_type,
        "period": limit.period,
        "currency": limit.currency or None,
        "amount": show(value) if money else None,
        "minutes": value if not money else None,
        "used": show(used),
        "remaining": show(max(value - used, 0)),
        "pending": None
        if pending is None
        else {
            "amount": show(pending["value"]) if money else None,
            "minutes": pending["value"] if not money else None,
            "remove": pending["remove"],
            "effective_at": pending["effective_at"].isoformat(),
        },
    }


def exclusion_json(row) -> dict | None:
    if row is None:
        return None
    return {
        "id": row.id,
        "kind": row.kind,
        "duration": row.duration,
        "starts_at": row.starts_at.isoformat(),
        "ends_at": row.ends_at.isoformat() if row.ends_at else None,
        "lifted_at": row.lifted_at.isoformat() if row.lifted_at else None,
    }


class LimitsSchema(Schema):
    limits = fields.List(fields.Dict())
    exclusion = fields.Dict(allow_none=True)
    reality_check_minutes = fields.Integer(allow_none=True)


def overview_json(user: User) -> dict:
    data = rg.overview(user)
    return {
        "limits": [limit_json(i) for i in data["limits"]],
        "exclusion": exclusion_json(data["exclusion"]),
        "reality_check_minutes": data["reality_check_minutes"],
    }


class SetLimitArgs(Schema):
    type = fields.String(required=True, validate=validate.OneOf(LIMIT_TYPES))
    period = fields.String(load_default="daily", validate=validate.OneOf(LIMIT_PERIODS))
    amount = Amount(load_default=None, allow_none=True)
    minutes = fields.Integer(load_default=None, allow_none=True)
    currency = Currency(load_default=None)
    remove = fields.Boolean(load_default=False)

    @validates_schema
    def _value(self, data, **_kw):
        if data["remove"]:
            return
        if data["type"] == "session_time" and data["minutes"] is None:
            raise SchemaError("minutes is required for a session_time limit", "minutes")
        if data["type"] != "session_time" and data["amount"] is None:
            raise SchemaError("amount is required for a money limit", "amount")


class SetLimitResult(Schema):
    outcome = fields.String()
    limits = fields.Nested(LimitsSchema)


@blp.route("/responsible-gaming/limits")
class Limits(MethodView):
    @player_required
    @blp.response(200, envelope_of(LimitsSchema))
    def get(self):
        """Limits with usage and pending changes, exclusion state and reality check."""
        return {"data": overview_json(g.user)}


@blp.route("/responsible-gaming/set-limit")
class SetLimit(MethodView):
    @player_required
    @blp.arguments(SetLimitArgs)
    @blp.response(200, envelope_of(SetLimitResult))
    def post(self, args):
        """Lowering binds at once; raising or removing waits out a 24 h cooling-off."""
        user = g.user
        if args["type"] == "session_time":
            currency, value = "", None if args["remove"] else args["minutes"]
        else:
            currency = args["currency"] or user.currency
            value = None
            if not args["remove"]:
                try:
                    value = parse_minor(args["amount"], currency)
                except MoneyError as exc:
                    raise ValidationError.field("amount", str(exc)) from None
        result = rg.set_limit(
            user, limit_type=args["type"], period=args["period"], value=value, currency=currency
        )
        return {"data": {"outcome": result["outcome"], "limits": overview_json(user)}}


class ExcludeArgs(Schema):
    duration = fields.String(required=True)
    reason = fields.String(load_default=None, validate=validate.Length(max=500))


class ExclusionSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    duration = fields.String()
    starts_at = fields.String()
    ends_at = fields.String(allow_none=True)
    lifted_at = fields.String(allow_none=True)


@blp.route("/responsible-gaming/self-exclude")
class SelfExclude(MethodView):
    @player_required
    @blp.arguments(ExcludeArgs)
    @blp.response(201, envelope_of(ExclusionSchema))
    def post(self, args):
        """Self-exclusion: 24_hours, 7_days, 1_month, 6_months, 1_year, 5_years, permanent."""
        row = rg.self_exclude(g.user, args["duration"], args["reason"])
        return {"data": exclusion_json(row)}, 201


@blp.route("/responsible-gaming/time-out")
class TimeOut(MethodView):
    @player_required
    @blp.arguments(ExcludeArgs)
    @blp.response(201, envelope_of(ExclusionSchema))
    def post(self, args):
        """A short break: 24_hours, 48_hours, 7_days, 1_month, 6_weeks."""
        row = rg.time_out(g.user, args["duration"], args["reason"])
        return {"data": exclusion_json(row)}, 201


class PromptSchema(Schema):
    due = fields.Boolean()
    answer = fields.String(allow_none=True)
    answered_at = fields.DateTime(allow_none=True)
    blocks_deposit = fields.Boolean()


class PromptArgs(Schema):
    action = fields.String(required=True, validate=validate.OneOf(rg.PROMPT_ACTIONS))
    amount = Amount(load_default=None, allow_none=True)
    period = fields.String(load_default="daily", validate=validate.OneOf(LIMIT_PERIODS))
    currency = Currency(load_default=None)


@blp.route("/responsible-gaming/deposit-limit-prompt")
class DepositLimitPrompt(MethodView):
    @player_required
    @blp.response(200, envelope_of(PromptSchema))
    def get(self):
        """Whether the deposit-limit prompt is due (and would refuse a first deposit)."""
        return {"data": rg.deposit_limit_prompt(g.user.id)}

    @player_required
    @blp.arguments(PromptArgs)
    @blp.response(200, envelope_of(PromptSchema))
    def post(self, args):
        """Answer the prompt: ``set`` (with ``amount``/``period``, or a deposit limit already
        held) or ``declined``. Recorded and audited; answering again replaces the answer."""
        user = g.user
        currency = args["currency"] or user.currency
        amount_minor = None
        if args["amount"] is not None:
            try:
                amount_minor = parse_minor(args["amount"], currency)
            except MoneyError as exc:
                raise ValidationError.field("amount", str(exc)) from None
        data = rg.answer_deposit_limit_prompt(
            user,
            args["action"],
            amount_minor=amount_minor,
            period=args["period"],
            currency=currency,
        )
        return {"data": data}


class LiftRequestSchema(ExclusionSchema):
    lift_requested_at = fields.String(allow_none=True)
    lift_confirmable_at = fields.String(allow_none=True)


def lift_json(row) -> dict:
    return {
        **(exclusion_json(row) or {}),
        "lift_requested_at": row.lift_requested_at.isoformat() if row.lift_requested_at else None,
        "lift_confirmable_at": row.lift_confirmable_at.isoformat()
        if row.lift_confirmable_at
        else None,
    }


@blp.route("/responsible-gaming/self-exclusion/lift-request")
class LiftRequest(MethodView):
    @player_required
    @blp.response(200, envelope_of(LiftRequestSchema))
    def post(self):
        """Ask to lift an ended self-exclusion; it can be confirmed after the cooling-off
        (24 h after a fixed-term one, 7 days for an indefinite one)."""
        return {"data": lift_json(rg.request_lift(g.user))}


@blp.route("/responsible-gaming/self-exclusion/lift-confirm")
class LiftConfirm(MethodView):
    @player_required
    @blp.response(200, envelope_of(LiftRequestSchema))
    def post(self):
        """Confirm a lift request once its cooling-off has passed: the self-exclusion ends."""
        return {"data": lift_json(rg.confirm_lift(g.user))}


class RealityArgs(Schema):
    interval_minutes = fields.Integer(required=True, allow_none=True)


class RealitySchema(Schema):
    interval_minutes = fields.Integer(allow_none=True)


@blp.route("/responsible-gaming/reality-check")
class RealityCheck(MethodView):
    @player_required
    @blp.response(200, envelope_of(RealitySchema))
    def get(self):
        return {"data": {"interval_minutes": rg.reality_check_minutes(g.user.id)}}

    @player_required
    @blp.arguments(RealityArgs)
    @blp.response(200, envelope_of(RealitySchema))
    def post(self, args):
        """Reminder interval in minutes (15, 30, 45, 60, 90, 120) or null to turn off."""
        row = rg.set_reality_check(g.user, args["interval_minutes"])
        return {"data": {"interval_minutes": row.reality_check_minutes}}


# --- staff -----------------------------------------------------------------------------------


class PlayerRgSchema(Schema):
    user_id = fields.Integer()
    limits = fields.List(fields.Dict())
    exclusion = fields.Dict(allow_none=True)
    exclusions = fields.List(fields.Dict())
    reality_check_minutes = fields.Integer(allow_none=True)


@blp.route("/admin/responsible-gaming/<int:user_id>")
class PlayerRg(MethodView):
    @permission_required("players.read")
    @blp.response(200, envelope_of(PlayerRgSchema))
    def get(self, user_id):
        """A player's limits and full exclusion history."""
        user = db.session.get(User, user_id)
        if user is None:
            raise NotFound("Player not found")
        return {
            "data": {
                "user_id": user.id,
                **overview_json(user),
                "exclusions": [exclusion_json(r) for r in rg.exclusions_of(user.id)],
            }
        }


class LiftArgs(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


@blp.route("/admin/responsible-gaming/exclusions/<int:exclusion_id>/lift")
class Lift(MethodView):
    @permission_required("settings.manage")
    @blp.arguments(LiftArgs)
    @blp.response(200, envelope_of(ExclusionSchema))
    def post(self, args, exclusion_id):
        """Admin only, and only after the self-exclusion period has ended."""
        return {"data": exclusion_json(rg.lift_exclusion(exclusion_id, g.user, args["reason"]))}


class FlagQuery(PageArgs):
    status = fields.String(
        load_default=None, validate=validate.OneOf(["open", "reviewed", "dismissed"])
    )
    user_id = fields.Integer(load_default=None)


class FlagSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer(allow_none=True)
    kind = fields.String()
    severity = fields.String()
    status = fields.String()
    reference = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
    created_at = fields.DateTime()
    reviewed_by_id = fields.Integer(allow_none=True)
    reviewed_at = fields.DateTime(allow_none=True)


@blp.route("/admin/risk/flags")
class Flags(MethodView):
    @permission_required("risk.read")
    @blp.arguments(FlagQuery, location="query")
    @blp.response(200, envelope_of(FlagSchema, many=True))
    def get(self, args):
        """AML and risk flags, newest first."""
        rows, total = risk.list_flags(
            status=args["status"], user_id=args["user_id"], page=args["page"], limit=args["limit"]
        )
        return {"data": rows, "meta": page_meta(args["page"], args["limit"], total)}


class ReviewArgs(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["reviewed", "dismissed"]))
    note = fields.String(load_default=None, validate=validate.Length(max=500))


@blp.route("/admin/risk/flags/<int:flag_id>/review")
class ReviewFlag(MethodView):
    @permission_required("risk.read")
    @blp.arguments(ReviewArgs)
    @blp.response(200, envelope_of(FlagSchema))
    def post(self, args, flag_id):
        return {"data": risk.review_flag(flag_id, g.user, status=args["status"], note=args["note"])}


# --- statement -------------------------------------------------------------------------------


class StatementQuery(Schema):
    from_ = fields.Date(data_key="from", load_default=None)
    to = fields.Date(load_default=None)
    currency = Currency(load_default=None)


class StatementSchema(Schema):
    currency = fields.String(allow_none=True)
    date_from = fields.String(data_key="from")
    date_to = fields.String(data_key="to")
    opening_balance = fields.Dict()
    closing_balance = fields.Dict()
    totals = fields.Dict()
    entries = fields.List(fields.Dict())
    truncated = fields.Boolean()


@blp.route("/user/statement")
class Statement(MethodView):
    @login_required
    @blp.arguments(StatementQuery, location="query")
    @blp.response(200, envelope_of(StatementSchema))
    def get(self, args):
        """Account history between two dates (default: the last 3 months; at most a year)."""
        today = datetime.now(UTC).date()
        to = args["to"] or today
        start = args["from_"] or (to - timedelta(days=92))
        if start > to:
            raise ValidationError.field("from", "from must not be after to")
        if (to - start).days > 366:
            raise ValidationError.field("from", "A statement covers at most 366 days")
        since = datetime.combine(start, time.min, tzinfo=UTC)
        until = datetime.combine(to + timedelta(days=1), time.min, tzinfo=UTC)
        data = statements.statement(g.user, since, until, currency=args["currency"])
        data["date_from"], data["date_to"] = start.isoformat(), to.isoformat()
        return {"data": data}
