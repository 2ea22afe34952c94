"""Reports: the financial and provider reports (from the analytics service: rollups for past
days, today live), the analytics page, the players report and the RTP check."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Response, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from app.blueprints.console import decisions
from app.blueprints.console.charts import Chart, money_chart
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import ApproveForm
from app.blueprints.console.wording import human
from app.core.base import utcnow
from app.core.extensions import db
from app.reports import financial as financial_reports
from app.reports import rollups
from app.reports import rtp as rtp_check
from app.reports.models import RTP_FLAG_STATUSES, RtpFlag


def report_args(args) -> tuple[date, date, str, str, str | None]:
    """Dates, currency and grouping from a query string; an error message instead of a 500."""
    today = utcnow().date()
    default_from, default_to = today - timedelta(days=29), today
    problems: list[str] = []
    try:
        date_to = date.fromisoformat(args.get("date_to") or today.isoformat())
        date_from = date.fromisoformat(
            args.get("date_from") or (date_to - timedelta(days=29)).isoformat()
        )
    except ValueError:
        problems.append("Enter the dates as YYYY-MM-DD.")
        date_from, date_to = default_from, default_to
    if date_to < date_from:
        problems.append("The “To” date is before the “From” date.")
    elif (date_to - date_from).days + 1 > financial_reports.MAX_DAYS:
        problems.append(f"A report covers at most {financial_reports.MAX_DAYS} days.")
    if problems:
        problems.append("Showing the last 30 days instead.")
        date_from, date_to = default_from, default_to
    group = args.get("group", "day")
    if group not in financial_reports.GROUPS:
        group = "day"
    default_currency = current_app.config["DEFAULT_CURRENCY"]
    currency = (args.get("currency") or default_currency).strip().upper()
    if not currency.isalpha() or len(currency) > 8:
        problems.append(f"“{currency[:12]}” is not a currency code: showing {default_currency}.")
        currency = default_currency
    # Every problem at once, in one message above the figures.
    return date_from, date_to, currency, group, " ".join(problems) or None


@bp.get("/reports")
@console_view("reports.read")
def reports_index():
    """``/admin/reports`` (a typed or bookmarked address): the menu's Reports page."""
    return redirect(url_for("console.financial_report"))


@bp.get("/reports/financial")
@console_view("reports.read")
def financial_report():
    date_from, date_to, currency, group, error = report_args(request.args)
    try:
        report = rollups.financial_report(date_from, date_to, currency=currency, group=group)
    except ValueError as exc:
        error = human(str(exc))
        date_to = utcnow().date()
        date_from = date_to - timedelta(days=29)
        report = rollups.financial_report(date_from, date_to, currency=currency, group=group)
    if request.args.get("format") == "csv":
        name = f"financial-{currency}-{date_from}-{date_to}-{group}.csv"
        return Response(
            financial_reports.report_csv(report),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    labels = [r.period.isoformat() for r in report.rows]
    charts = [
        money_chart(
            f"GGR per {group}",
            labels,
            [r.ggr for r in report.rows],
            currency,
            value_label="GGR",
            caption=f"GGR (bets - wins) per {group}, UTC",
        ),
        money_chart(
            f"NGR per {group}",
            labels,
            [r.ngr for r in report.rows],
            currency,
            value_label="NGR",
            kind="line",
            caption=f"NGR (GGR - bonus cost - payment fees) per {group}, UTC",
        ),
    ]
    return render_template(
        "console/reports/financial.html",
        report=report,
        charts=charts,
        error=error,
        figures=financial_reports.FIGURES,
        groups=financial_reports.GROUPS,
        filters={
            "date_from": date_from.isoformat(),
            "date_to": date_to.isoformat(),
            "currency": currency,
            "group": group,
        },
    )


@bp.get("/reports/analytics")
@console_view("reports.read")
def analytics_report():
    date_from, date_to, currency, _group, error = report_args(request.args)
    group = request.args.get("group", "day")
    if group not in rollups.BREAKDOWNS:
        group = "day"
    data = rollups.breakdown(date_from, date_to, currency=currency, group=group)
    charts = [
        money_chart(
            f"GGR per {group}",
            [r.label for r in data.rows],
            [r.ggr for r in data.rows],
            currency,
            value_label="GGR",
            caption=f"GGR (stakes - wins) per {group}, {date_from} to {date_to} (UTC)",
        )
    ]
    return render_template(
        "console/reports/analytics.html",
        data=data,
        charts=charts,
        error=error,
        groups=rollups.BREAKDOWNS,
        filters={
            "date_from": date_from.isoformat(),
            "date_to": date_to.isoformat(),
            "currency": currency,
            "group": group,
        },
    )


@bp.get("/reports/providers")
@console_view("reports.read")
def providers_report():
    date_from, date_to, currency, _group, error = report_args(request.args)
    try:
        rows = rollups.providers_report(date_from, date_to, currency=currency)
    except ValueError as exc:
        error = human(str(exc))
        date_to = utcnow().date()
        date_from = date_to - timedelta(days=29)
        rows = rollups.providers_report(date_from, date_to, currency=currency)
    if request.args.get("format") == "csv":
        name = f"providers-{currency}-{date_from}-{date_to}.csv"
        return Response(
            financial_reports.providers_csv(rows, currency),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    charts = [
        money_chart(
            "GGR per provider",
            [r.name for r in rows],
            [r.ggr for r in rows],
            currency,
            value_label="GGR",
            caption=f"GGR (bets - wins) per provider, {date_from} to {date_to}",
        )
    ]
    return render_template(
        "console/reports/providers.html",
        rows=rows,
        charts=charts,
        error=error,
        currency=currency,
        filters={
            "date_from": date_from.isoformat(),
            "date_to": date_to.isoformat(),
            "currency": currency,
        },
    )


@bp.get("/reports/players")
@console_view("reports.read")
def players_report():
    date_from, date_to, _currency, _group, error = report_args(request.args)
    try:
        report = financial_reports.players(date_from, date_to)
    except ValueError as exc:
        error = human(str(exc))
        date_to = utcnow().date()
        date_from = date_to - timedelta(days=29)
        report = financial_reports.players(date_from, date_to)
    filters = {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
    if request.args.get("format") == "csv":
        return Response(
            financial_reports.players_csv(report),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="players-{date_from}-{date_to}.csv"'
            },
        )
    labels = [d.day.strftime("%d %b") for d in report.days]
    charts = [
        Chart(
            title="Registrations per day",
            labels=labels,
            values=[d.registrations for d in report.days],
            value_label="Registrations",
            caption="New players per UTC day",
        ),
        Chart(
            title="Active players per day",
            labels=labels,
            values=[d.active for d in report.days],
            kind="line",
            value_label="Active players",
            caption="Players with at least one bet per UTC day",
        ),
    ]
    return render_template(
        "console/reports/players.html", report=report, charts=charts, error=error, filters=filters
    )


@bp.get("/reports/rtp")
@console_view("reports.read")
def rtp_report():
    status = request.args.get("status", "open")
    if status not in (*RTP_FLAG_STATUSES, "all"):
        status = "open"
    flags = rtp_check.list_flags(None if status == "all" else status)
    return render_template(
        "console/reports/rtp.html",
        flags=flags,
        status=status,
        statuses=("open", "acknowledged", "cleared", "all"),
        thresholds=rtp_check.Thresholds.current(),
    )


@bp.route("/reports/rtp/<int:flag_id>/acknowledge", methods=["GET", "POST"])
@console_view("games.manage")
def rtp_acknowledge(flag_id: int):
    flag = db.session.get(RtpFlag, flag_id)
    if flag is None:
        abort(404)
    form = ApproveForm()

    def act(context: str):
        rtp_check.acknowledge(flag_id, actor=current_user, note=form.note.data)
        db.session.expire_all()
        ((row, name),) = [(f, n) for f, n in rtp_check.list_flags() if f.id == flag_id]
        return (
            "console/reports/_rtp_row.html",
            {"flag": row, "name": name},
            f"RTP flag #{flag_id} acknowledged.",
            url_for("console.rtp_report"),
        )

    dialog = {
        "title": f"Acknowledge RTP flag #{flag.id}",
        "action_url": url_for("console.rtp_acknowledge", flag_id=flag.id),
        "submit_label": "Acknowledge",
        "danger": False,
        "description": f"Game #{flag.game_id} ({flag.currency}): measured {flag.measured_rtp} % "
        f"against {flag.declared_rtp} % declared, {flag.window_from} to {flag.window_to}. "
        "The flag stays on the list as acknowledged; the check clears it when the game is "
        "back within tolerance.",
    }
    return decisions.run(
        form,
        contexts={"row": f"#rtp-flag-{flag.id}", "panel": f"#rtp-flag-{flag.id}"},
        dialog=dialog,
        act=act,
    )
