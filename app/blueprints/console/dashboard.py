"""The landing page: KPIs and charts for those who may read reports, a map for everyone."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user

from app.blueprints.console.charts import daily_chart
from app.blueprints.console.core import bp, console_view, nav_for
from app.services import reports


@bp.get("/")
@console_view()
def dashboard():
    overview = charts = None
    if current_user.can("reports.read"):
        overview = reports.dashboard_overview()
        charts = [
            daily_chart(
                "New player registrations, last 14 days",
                overview["series"]["registrations_per_day"],
                value_label="Registrations",
            )
        ]
    areas = [item for item in nav_for(current_user) if item.endpoint != "console.dashboard"]
    return render_template("console/dashboard.html", overview=overview, charts=charts, areas=areas)
