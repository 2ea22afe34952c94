"""``/api/admin/analytics/{dashboard,users,revenue,games}`` (permission ``reports.read``):
figures read from the daily rollups (``app.reports.rollups``); today (and a day never rolled)
folded live.
Money as decimal strings in ``currency`` (docs/api.md)."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core.base import utcnow
from app.core.errors import ValidationError
from app.core.schemas import Currency, envelope_of
from app.identity.auth import permission_required
from app.reports import financial as financial_reports
from app.reports import rollups
from app.reports import rtp as rtp_check
from app.reports.models import RTP_FLAG_STATUSES

blp = Blueprint(
    "admin_analytics",
    __name__,
    url_prefix="/api/admin/analytics",
    description="Staff: analytics from the daily rollups",
)


class RangeArgs(Schema):
    date_from = fields.Date(metadata={"description": "Default: 29 days before date_to"})
    date_to = fields.Date(metadata={"description": "Inclusive; default: today (UTC)"})
    currency = Currency()


class RevenueArgs(RangeArgs):
    group = fields.String(load_default="day", validate=validate.OneOf(financial_reports.GROUPS))


class GamesArgs(RangeArgs):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    group_by = fields.String(
        load_default="game",
        validate=validate.OneOf(("game", "provider")),
        metadata={"description": "game (rows in `games`) or provider (rows in `providers`)"},
    )


class AnalyticsSchema(Schema):
    currency = fields.String()
    date_from = fields.String()
    date_to = fields.String()


class DashboardSchema(AnalyticsSchema):
    totals = fields.Dict(metadata={"description": "Money as decimal strings, counts as integers"})
    ggr_per_day = fields.List(fields.Dict())
    top_games = fields.List(fields.Dict())
    rolled_at = fields.String(allow_none=True)
    rolled_until = fields.String(allow_none=True, metadata={"description": "Last rolled day"})
    live_days = fields.List(fields.String(), metadata={"description": "Days folded live"})


class RevenueSchema(AnalyticsSchema):
    group = fields.String()
    rows = fields.List(fields.Dict())
    totals = fields.Dict()


class UsersSchema(AnalyticsSchema):
    days = fields.List(fields.Dict())
    totals = fields.Dict()


class GamesSchema(AnalyticsSchema):
    group_by = fields.String()
    games = fields.List(fields.Dict(), metadata={"description": "With group_by=game"})
    providers = fields.List(
        fields.Dict(),
        metadata={
            "description": "With group_by=provider: stakes, wins, GGR, RTP, bonus stakes, "
            "bets, rounds, player-days"
        },
    )


def _range(args):
    date_to = args.get("date_to") or utcnow().date()
    date_from = args.get("date_from") or date_to - timedelta(days=29)
    currency = args.get("currency") or current_app.config["DEFAULT_CURRENCY"]
    try:
        rollups.check_range(date_from, date_to)
    except ValueError as exc:
        raise ValidationError.field("date_from", str(exc)) from None
    return date_from, date_to, currency


@blp.route("/dashboard")
class Dashboard(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RangeArgs, location="query")
    @blp.response(200, envelope_of(DashboardSchema))
    def get(self, args):
        """Totals of the range (stakes, wins, GGR, NGR, RTP, bets, player-days, deposits,
        withdrawals, bonus cost, fees), GGR per day and the top 5 games by GGR."""
        date_from, date_to, currency = _range(args)
        return {"data": rollups.dashboard(date_from, date_to, currency=currency)}


@blp.route("/revenue")
class Revenue(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RevenueArgs, location="query")
    @blp.response(200, envelope_of(RevenueSchema))
    def get(self, args):
        """Money per day / ISO week / month, zero-filled, with totals."""
        date_from, date_to, currency = _range(args)
        data = rollups.revenue(date_from, date_to, currency=currency, group=args["group"])
        return {"data": data}


@blp.route("/users")
class Users(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RangeArgs, location="query")
    @blp.response(200, envelope_of(UsersSchema))
    def get(self, args):
        """Distinct bettors, bets, depositors and first-time depositors per day."""
        date_from, date_to, currency = _range(args)
        return {"data": rollups.users(date_from, date_to, currency=currency)}


@blp.route("/games")
class Games(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(GamesArgs, location="query")
    @blp.response(200, envelope_of(GamesSchema))
    def get(self, args):
        """Per game (or per provider with ``group_by=provider``): stakes, wins, GGR, RTP, bets
        and player-days, highest GGR first."""
        date_from, date_to, currency = _range(args)
        if args["group_by"] == "provider":
            return {"data": rollups.providers(date_from, date_to, currency=currency)}
        data = rollups.games(date_from, date_to, currency=currency, limit=args["limit"])
        return {"data": data}


class RtpArgs(Schema):
    status = fields.String(
        validate=validate.OneOf(RTP_FLAG_STATUSES),
        metadata={"description": "open, acknowledged or cleared; default: all"},
    )


class RtpFlagSchema(Schema):
    id = fields.Integer()
    game_id = fields.Integer()
    game_name = fields.String()
    currency = fields.String()
    status = fields.String()
    declared_rtp = fields.String(metadata={"description": "Percent, from the games table"})
    measured_rtp = fields.String(metadata={"description": "Percent, wins / stakes"})
    deviation_pp = fields.String(metadata={"description": "measured - declared, in points"})
    stakes = fields.String()
    wins = fields.String()
    bets_count = fields.Integer()
    window_from = fields.String()
    window_to = fields.String()
    raised_at = fields.String(allow_none=True)
    checked_at = fields.String(allow_none=True)
    acknowledged_by = fields.Integer(allow_none=True)
    acknowledged_at = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    cleared_at = fields.String(allow_none=True)


class RtpListSchema(Schema):
    settings = fields.Dict(metadata={"description": "The check's current thresholds"})
    flags = fields.List(fields.Nested(RtpFlagSchema))


class AcknowledgeSchema(Schema):
    note = fields.String(load_default=None, validate=validate.Length(max=500))


def _thresholds() -> dict:
    th = rtp_check.Thresholds.current()
    return {
        "window_days": th.window_days,
        "min_bets": th.min_bets,
        "min_stakes_minor": th.min_stakes,
        "tolerance_pp": str(th.tolerance),
    }


@blp.route("/rtp")
class RtpFlags(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(RtpArgs, location="query")
    @blp.response(200, envelope_of(RtpListSchema))
    def get(self, args):
        """Games whose measured RTP over the check's window departed from the declared RTP
        beyond the tolerance (the hourly RTP check, ``flask jackpotx reports rtp-check``)."""
        flags = rtp_check.list_flags(args.get("status"))
        return {
            "data": {
                "settings": _thresholds(),
                "flags": [rtp_check.flag_json(flag, name) for flag, name in flags],
            }
        }


@blp.route("/rtp/<int:flag_id>/acknowledge")
class RtpAcknowledge(MethodView):
    @permission_required("games.manage")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(AcknowledgeSchema)
    @blp.response(200, envelope_of(RtpFlagSchema))
    def post(self, args, flag_id: int):
        """Acknowledge an open flag (optional note); audited as the staff member's decision."""
        flag = rtp_check.acknowledge(flag_id, actor=g.user, note=args.get("note"))
        return {"data": rtp_check.flag_json(flag)}
