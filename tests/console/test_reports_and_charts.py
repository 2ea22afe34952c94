"""Dashboard figures against hand-counted data; the SVG chart helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.blueprints.console.charts import Chart, daily_chart
from app.core.extensions import db
from app.reports import figures as reports

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _player(factory, created: datetime, **kw):
    user = factory.player(**kw)
    user.created_at = created
    db.session.commit()
    return user


def test_player_kpis_count_players_only_from_the_real_table(factory):
    _player(factory, NOW - timedelta(hours=2))
    _player(factory, NOW - timedelta(hours=23))
    old = _player(factory, NOW - timedelta(days=3))
    old.last_login_at = NOW - timedelta(hours=1)
    old.status = "banned"
    db.session.commit()
    factory.staff("support")  # staff never count as players
    kpis = {k.key: k.value for k in reports.player_kpis(now=NOW)}
    assert kpis["players_total"] == 3
    assert kpis["players_new_24h"] == 2
    assert kpis["players_logged_in_24h"] == 1
    assert kpis["players_restricted"] == "0 / 1"
    assert kpis["staff_total"] == 1


def test_registrations_per_day_is_zero_filled_and_bucketed_by_utc_day(factory):
    _player(factory, NOW.replace(hour=0, minute=0, second=1))
    _player(factory, NOW.replace(hour=23, minute=59))
    _player(factory, NOW - timedelta(days=2))
    _player(factory, NOW - timedelta(days=20))  # outside the window
    series = reports.registrations_per_day(7, now=NOW)
    assert len(series) == 7
    assert series[0].day == NOW.date() - timedelta(days=6)
    assert series[-1].day == NOW.date()
    assert [p.value for p in series] == [0, 0, 0, 0, 1, 0, 2]


def test_overview_json_twin_uses_plain_types(factory):
    _player(factory, NOW - timedelta(hours=1))
    data = reports.as_json(reports.dashboard_overview(now=NOW))
    assert data["generated_at"] == NOW.isoformat()
    assert {"key": "players_total", "label": "Players", "value": 1, "hint": None} in data[
        "sections"
    ]["players"]
    assert data["series"]["registrations_per_day"][-1] == {"day": "2026-11-23", "value": 1}


def test_chart_svg_is_labelled_and_has_a_tooltip_per_bar():
    chart = Chart(title="Deposits", labels=["Mon", "Tue", "Wed"], values=[3, 0, 12])
    svg = str(chart.svg())
    assert svg.startswith("<svg")
    assert 'role="img"' in svg
    assert "aria-labelledby=" in svg
    assert "<title id=" in svg
    assert svg.count('<rect class="bar"') == 3
    assert "<title>Wed: 12</title>" in svg
    assert "highest 12 on Wed" in chart.summary()
    assert chart.rows == [("Mon", "3"), ("Tue", "0"), ("Wed", "12")]


def test_chart_escapes_labels_and_survives_no_data():
    chart = Chart(title="<script>x</script>", labels=["<b>"], values=[0])
    svg = str(chart.svg())
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "&lt;b&gt;" in svg
    empty = Chart(title="Nothing", labels=[], values=[])
    assert "no data" in str(empty.svg())


def test_line_chart_and_daily_labels():
    points = reports.registrations_per_day(3, now=NOW)
    chart = daily_chart("Signups", points, value_label="Signups", kind="line")
    svg = str(chart.svg())
    assert "<polyline" in svg
    assert "21 Nov" in svg
    assert "Signups per UTC day" in svg


def test_axis_ticks_are_whole_numbers_for_counts():
    from app.blueprints.console.charts import _axis_top, _ticks

    assert _ticks(_axis_top([0, 4, 1])) == [0, 1, 2, 3, 4]
    assert _axis_top([0, 0]) == 4
    assert _axis_top([37]) == 40
    assert _axis_top([0.3, 0.9]) == 1.0
