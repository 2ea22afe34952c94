"""The landing page: KPIs and charts for those who may read reports, a map for everyone."""

from __future__ import annotations

from typing import Any

from flask import render_template, url_for
from flask_login import current_user

from app.blueprints.console.charts import daily_chart, money_chart
from app.blueprints.console.core import bp, console_view, nav_counts, nav_for
from app.reports import figures as reports

#: KPI key → (endpoint, query, permission): each card links to the list behind its figure.
KPI_LINKS: dict[str, tuple[str, dict[str, Any], str]] = {
    "players_total": ("console.players", {}, "players.read"),
    "players_new_24h": ("console.players", {"sort": "created", "dir": "desc"}, "players.read"),
    "players_logged_in_24h": ("console.players", {}, "players.read"),
    "players_restricted": ("console.players", {"status": "suspended"}, "players.read"),
    "staff_total": ("console.staff", {}, "staff.manage"),
    "bets_today": ("console.bets", {}, "transactions.read"),
    "ggr_today": ("console.financial_report", {}, "reports.read"),
    "ggr_14d": ("console.financial_report", {}, "reports.read"),
    "deposits_today": ("console.deposits", {"status": "all"}, "withdrawals.read"),
    "withdrawals_today": ("console.withdrawals", {"status": "completed"}, "withdrawals.read"),
    "pending_withdrawals": ("console.withdrawals", {"status": "pending"}, "withdrawals.read"),
    "pending_kyc": ("console.kyc_queue", {"status": "pending"}, "kyc.read"),
}


def kpi_links(user) -> dict[str, str]:
    return {
        key: url_for(endpoint, **query)
        for key, (endpoint, query, permission) in KPI_LINKS.items()
        if user.can(permission)
    }


@bp.get("/")
@console_view()
def dashboard():
    overview = charts = None
    if current_user.can("reports.read"):
        overview = reports.dashboard_overview()
        currency = overview["currency"]
        money = overview["money_series"]
        labels = [p.day.strftime("%d %b") for p in money["ggr"]]
        charts = [
            money_chart(
                "GGR per day, last 14 days",
                labels,
                [p.value for p in money["ggr"]],
                currency,
                value_label="GGR",
                caption="GGR (bets - wins) per UTC day",
            ),
            money_chart(
                "Deposits per day, last 14 days",
                labels,
                [p.value for p in money["deposits"]],
                currency,
                value_label="Deposits",
                caption="Deposits per UTC day",
            ),
            money_chart(
                "Withdrawals paid per day, last 14 days",
                labels,
                [p.value for p in money["withdrawals"]],
                currency,
                value_label="Withdrawals",
                caption="Withdrawals paid per UTC day",
            ),
            daily_chart(
                "New player registrations, last 14 days",
                overview["series"]["registrations_per_day"],
                value_label="Registrations",
            ),
        ]
    areas = [item for item in nav_for(current_user) if item.endpoint != "console.dashboard"]
    return render_template(
        "console/dashboard.html",
        overview=overview,
        charts=charts,
        areas=areas,
        links=kpi_links(current_user),
    )


@bp.get("/nav-counts", endpoint="nav_counts")
@console_view()
def nav_counts_fragment():
    """The menu's pending badges, refreshed by htmx after a decision or a live notification."""
    return render_template("console/components/nav_counts.html", counts=nav_counts(current_user))
