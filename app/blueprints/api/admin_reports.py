"""``/api/admin/reports/*`` and ``/api/admin/dashboard/overview`` (permission ``reports.read``):
the JSON twins of the console's reports, from the same service functions."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core.base import utcnow
from app.core.errors import ValidationError
from app.core.schemas import Currency, envelope_of
from app.identity.auth import permission_required
from app.reports import figures as reports
from app.reports import financial as financial_reports

blp = Blueprint("admin_reports", __name__, url_prefix="/api/admin", description="Staff: reports")

_FIGURES: dict[str, fields.Field] = {
    name: fields.String(metadata={"example": "152.40"}) for name in financial_reports.FIGURES
}
FiguresSchema = Schema.from_dict(_FIGURES, name="FinancialFigures")
PeriodSchema = Schema.from_dict(
    {
        "period": fields.String(metadata={"description": "First day of the period (UTC), ISO"}),
        **_FIGURES,
    },
    name="FinancialPeriod",
)


class FinancialReportSchema(Schema):
    currency = fields.String()
    group = fields.String()
    date_from = fields.String()
    date_to = fields.String()
    rows = fields.List(fields.Nested(PeriodSchema))
    totals = fields.Nested(FiguresSchema)


class FinancialArgs(Schema):
    date_from = fields.Date(metadata={"description": "Default: 29 days before date_to"})
    date_to = fields.Date(metadata={"description": "Inclusive; default: today (UTC)"})
    currency = Currency()
    group = fields.String(load_default="day", validate=validate.OneOf(financial_reports.GROUPS))


@blp.route("/reports/financial")
class FinancialReport(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(FinancialArgs, location="query")
    @blp.response(200, envelope_of(FinancialReportSchema))
    def get(self, args):
        """Bets, wins, GGR, bonus cost, payment fees, NGR, deposits and withdrawals per period,
        computed from the ledger (definitions: docs/console.md)."""
        date_to = args.get("date_to") or utcnow().date()
        date_from = args.get("date_from") or date_to - timedelta(days=29)
        currency = args.get("currency") or current_app.config["DEFAULT_CURRENCY"]
        try:
            report = financial_reports.financial(
                date_from, date_to, currency=currency, group=args["group"]
            )
        except ValueError as exc:
            raise ValidationError.field("date_from", str(exc)) from None
        return {"data": financial_reports.report_json(report)}


class ProviderReportRowSchema(Schema):
    code = fields.String()
    name = fields.String()
    rounds = fields.Integer()
    bets = fields.String()
    wins = fields.String()
    ggr = fields.String()
    rtp = fields.String(allow_none=True, metadata={"description": "wins / bets in %"})
    callbacks = fields.Integer()
    callback_errors = fields.Integer()


class ProvidersReportSchema(Schema):
    currency = fields.String()
    date_from = fields.String()
    date_to = fields.String()
    providers = fields.List(fields.Nested(ProviderReportRowSchema))


class ProvidersArgs(Schema):
    date_from = fields.Date()
    date_to = fields.Date()
    currency = Currency()


@blp.route("/reports/providers")
class ProvidersReport(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ProvidersArgs, location="query")
    @blp.response(200, envelope_of(ProvidersReportSchema))
    def get(self, args):
        """Per provider: rounds, bets, wins, GGR, RTP and callback errors (from the ledger)."""
        date_to = args.get("date_to") or utcnow().date()
        date_from = args.get("date_from") or date_to - timedelta(days=29)
        currency = args.get("currency") or current_app.config["DEFAULT_CURRENCY"]
        try:
            rows = financial_reports.providers(date_from, date_to, currency=currency)
        except ValueError as exc:
            raise ValidationError.field("date_from", str(exc)) from None
        return {
            "data": {
                "currency": currency,
                "date_from": date_from.isoformat(),
                "date_to": date_to.isoformat(),
                "providers": [financial_reports.provider_json(r, currency) for r in rows],
            }
        }


class UsersReportSchema(Schema):
    date_from = fields.String()
    date_to = fields.String()
    days = fields.List(
        fields.Dict(), metadata={"description": "day, registrations, first_deposits, active"}
    )
    countries = fields.List(
        fields.Dict(), metadata={"description": "country, registrations, first_deposits"}
    )
    retention = fields.Dict(metadata={"description": "R1/R7/R30: cohort, returned, percent"})


class UsersArgs(Schema):
    date_from = fields.Date()
    date_to = fields.Date()


@blp.route("/reports/users")
class UsersReport(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(UsersArgs, location="query")
    @blp.response(200, envelope_of(UsersReportSchema))
    def get(self, args):
        """Registrations, first-time depositors, active players per day; countries; R1/R7/R30."""
        date_to = args.get("date_to") or utcnow().date()
        date_from = args.get("date_from") or date_to - timedelta(days=29)
        try:
            report = financial_reports.players(date_from, date_to)
        except ValueError as exc:
            raise ValidationError.field("date_from", str(exc)) from None
        return {"data": financial_reports.players_json(report)}


class DashboardOverviewArgs(Schema):
    currency = Currency()


class DashboardOverviewSchema(Schema):
    generated_at = fields.String()
    currency = fields.String()
    sections = fields.Dict(metadata={"description": "KPI rows per section (players, money)"})
    series = fields.Dict(metadata={"description": "Counts per UTC day"})
    money_series = fields.Dict(metadata={"description": "Decimal strings per UTC day"})


@blp.route("/dashboard/overview")
class DashboardOverview(MethodView):
    @permission_required("reports.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(DashboardOverviewArgs, location="query")
    @blp.response(200, envelope_of(DashboardOverviewSchema))
    def get(self, args):
        """The console dashboard as JSON: KPI sections and per-day series."""
        overview = reports.dashboard_overview(currency=args.get("currency"))
        return {"data": reports.as_json(overview)}
