"""The analytics page and the RTP check in a real browser: a manager picks a date range and a
grouping, reads the figures, and acknowledges an RTP flag through the modal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.core.extensions import db
from app.play.models import Game
from app.reports import rollups, rtp
from app.reports.models import RtpFlag
from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _shot,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)
from tests.moneykit import open_table

pytestmark = pytest.mark.browser


def test_manager_reads_analytics_per_provider_and_acknowledges_an_rtp_flag(
    app,
    client,
    factory,
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    monkeypatch,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    table = open_table(client, factory, cash=100_00)
    for i in range(5):
        table.bet(f"b{i}", "10.00", round_id=f"r{i}")
    table.win("w0", "80.00", round_id="r0")  # 80.00 / 50.00: 160 %
    game = db.session.scalar(sa.select(Game).where(Game.external_id == table.game_external))
    game.rtp = Decimal("96.00")
    db.session.commit()
    today = datetime.now(UTC).date()
    # Today's play is judged once the day is complete: check "tomorrow" with a 1-day window.
    for key, value in (("RTP_WINDOW_DAYS", 1), ("RTP_MIN_BETS", 5), ("RTP_MIN_STAKES", 10_00)):
        monkeypatch.setitem(app.config, key, value)
    rtp.check(now=datetime.now(UTC) + timedelta(days=1))
    (flag,) = db.session.scalars(sa.select(RtpFlag)).all()
    rollups.rollup_day(today - timedelta(days=1))
    db.session.commit()

    manager = make_staff("manager")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    browser.get(f"{live_server}/admin/reports/analytics")
    _wait(browser, lambda d: d.find_elements(By.ID, "analytics-filters"))
    start = browser.find_element(By.ID, "f-from")
    browser.execute_script(
        "arguments[0].value = arguments[1]", start, (today - timedelta(days=6)).isoformat()
    )
    Select(browser.find_element(By.ID, "f-group")).select_by_value("provider")
    browser.find_element(By.CSS_SELECTOR, "#analytics-filters button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#analytics-table tbody tr"))
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-key="{table.provider_code}"]')
    assert "50.00" in row.text  # stakes
    assert "-30.00" in row.text  # GGR
    assert "160.00 %" in row.text
    assert "folded live" in browser.find_element(By.ID, "analytics-source").text
    _shot(browser, "analytics-per-provider")

    browser.find_element(By.LINK_TEXT, "RTP check").click()
    _wait(browser, lambda d: d.find_elements(By.ID, f"rtp-flag-{flag.id}"))
    browser.find_element(
        By.CSS_SELECTOR, f'#rtp-flag-{flag.id} [data-action="acknowledge"]'
    ).click()
    note = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#modal-root textarea"))[0]
    note.send_keys("jackpot hit confirmed by the provider")
    browser.find_element(By.CSS_SELECTOR, "#modal-root button[type=submit]").click()
    _wait(
        browser,
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'#rtp-flag-{flag.id}[data-status="acknowledged"]'
        ),
    )
    _shot(browser, "rtp-acknowledged")
    db.session.remove()
    done = db.session.get_one(RtpFlag, flag.id)
    assert (done.status, done.acknowledged_by, done.note) == (
        "acknowledged", manager.user.id, "jackpot hit confirmed by the provider",
    )  # fmt: skip
    assert _console_errors(browser) == []
