"""The console's analytics page (date range x day/week/month/game/provider) and the
dashboard: the same analytics service as the API (rollups for past days, today live)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from freezegun import freeze_time

from app.core.extensions import db
from app.reports import rollups
from app.reports.models import RolledDay
from tests.console.test_analytics_rollups import both  # noqa: F401  (the shared fixture)
from tests.console.test_financial_report import scenario  # noqa: F401

D1, D2 = date(2026, 11, 20), date(2026, 11, 21)
URL = "/admin/reports/analytics?date_from=2026-11-20&date_to=2026-11-21&currency=EUR"


def _rows(html: str) -> list[str]:
    return [chunk.split('"', 1)[0] for chunk in html.split('data-key="')[1:]]


def test_the_analytics_page_groups_by_day_game_and_provider(both, signed_in):  # noqa: F811
    table, other = both
    client, _ = signed_in("manager")
    for rolled in (False, True):
        if rolled:
            rollups.rollup_range(D1, D2)
        days = client.get(URL).get_data(as_text=True)
        assert _rows(days) == ["2026-11-20", "2026-11-21"]
        assert "28.00" in days  # GGR of the range
        assert "24.32 %" in days  # RTP 9.00 / 37.00
        source = days.split('id="analytics-source"', 1)[1].split("</p>", 1)[0]
        if rolled:
            assert "last rolled day 2026-11-21" in source
            assert "live" not in source
        else:
            assert "folded live" in source
        games = client.get(f"{URL}&group=game").get_data(as_text=True)
        assert len(_rows(games)) == 2
        assert "23.33 %" in games and "28.57 %" in games  # noqa: PT018
        providers = client.get(f"{URL}&group=provider").get_data(as_text=True)
        assert _rows(providers) == [table.provider_code, other.provider_code]
    week = client.get(f"{URL}&group=week").get_data(as_text=True)
    assert _rows(week) == ["2026-11-16"]


def test_the_analytics_page_shrugs_off_absurd_input(signed_in):
    client, _ = signed_in("manager")
    for query in (
        "group=drop%20table",
        "date_from=abc&date_to=1e309",
        "date_from=2026-11-21&date_to=2026-11-20",
        "date_from=1900-01-01&date_to=2026-11-20",
        "currency=%E2%82%AC%E2%82%AC",
    ):
        page = client.get(f"/admin/reports/analytics?{query}")
        assert page.status_code == 200, query
    # A NUL byte is refused before any view runs.
    assert client.get("/admin/reports/analytics?group=%00").status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RolledDay)) == 0


def test_support_cannot_read_analytics(signed_in):
    client, _ = signed_in("support")
    assert client.get("/admin/reports/analytics").status_code in (302, 403)


def test_the_financial_report_page_reads_the_rollups_for_rolled_days(both, signed_in):  # noqa: F811
    client, _ = signed_in("manager")
    url = "/admin/reports/financial?date_from=2026-11-20&date_to=2026-11-21&currency=EUR&format=csv"
    live = client.get(url).get_data(as_text=True)
    rollups.rollup_range(D1, D2)
    assert client.get(url).get_data(as_text=True) == live
    # A rolled day is read from the rollups: a movement that lands after the roll shows once
    # the day is rolled again (the periodic job re-rolls yesterday and today).
    _, other = both
    with freeze_time(datetime(2026, 11, 20, 16, 0, tzinfo=UTC), tick=True):
        assert other.bet("late-d1", "1.00", round_id="late")["status"] == "ok"
    assert client.get(url).get_data(as_text=True) == live
    rollups.rollup_day(D1)
    assert "2026-11-20,EUR,18.00,6.00,12.00" in client.get(url).get_data(as_text=True)
