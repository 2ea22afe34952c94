"""The landing page: KPIs and charts for those who may read reports, a map for everyone."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user

from app.blueprints.console.charts import daily_chart, money_chart
from app.blueprints.console.core import bp, console_view, nav_for
from app.reports import figures as reports


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
    return render_template("console/dashboard.html", overview=overview, charts=charts, areas=areas)
