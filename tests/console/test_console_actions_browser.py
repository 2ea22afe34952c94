"""Issue 20 in a real browser: dangerous one-click actions ask first, the maintenance banner,
panels and badges that follow a decision, and the queue page that follows a live toast."""

from __future__ import annotations

import pytest

from app.core import settings as settings_service
from app.core.extensions import db
from app.play.models import Provider
from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _open_modal,
    _shot,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)

pytestmark = pytest.mark.browser


def _alert(driver):
    from selenium.webdriver.support import expected_conditions

    return _wait(driver, expected_conditions.alert_is_present())


def test_disable_and_maintenance_ask_first_and_the_banner_shows(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    factory,
    app,
):
    from selenium.webdriver.common.by import By

    from tests.moneykit import open_table

    table = open_table(app.test_client(), factory)
    provider_id = db.session.scalar(
        db.select(Provider.id).where(Provider.code == table.provider_code)
    )
    db.session.commit()
    admin = make_staff("admin")
    _sign_in(browser, live_server, admin.user.username, admin.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))

    browser.find_element(By.LINK_TEXT, "Providers").click()
    row = f"#provider-row-{provider_id}"
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row))
    browser.find_element(By.CSS_SELECTOR, f'{row} [data-action="toggle-active"]').click()
    alert = _alert(browser)
    assert alert.text.startswith("Disable ")
    alert.dismiss()
    db.session.remove()
    assert db.session.get(Provider, provider_id).active  # cancelled: nothing sent
    browser.find_element(By.CSS_SELECTOR, f'{row} [data-action="toggle-active"]').click()
    _alert(browser).accept()
    _wait(
        browser,
        lambda d: (
            "badge-inactive" in d.find_element(By.CSS_SELECTOR, row).get_attribute("innerHTML")
        ),
    )
    db.session.remove()
    assert not db.session.get(Provider, provider_id).active

    browser.find_element(By.LINK_TEXT, "Settings").click()
    box = _wait(browser, lambda d: d.find_element(By.NAME, "maintenance_mode"))
    box.click()
    save = "#settings-platform form button.btn-primary"
    browser.find_element(By.CSS_SELECTOR, save).click()
    alert = _alert(browser)
    assert alert.text.startswith("Turn maintenance mode on?")
    alert.dismiss()
    assert not browser.find_elements(By.ID, "maintenance-banner")
    assert not settings_service.maintenance_state()["enabled"]
    browser.find_element(By.CSS_SELECTOR, save).click()
    _alert(browser).accept()
    banner = _wait(browser, lambda d: d.find_element(By.ID, "maintenance-banner"))
    assert "Maintenance mode is ON" in banner.text
    _shot(browser, "20-maintenance-banner")
    browser.find_element(By.LINK_TEXT, "Players").click()
    assert browser.find_element(By.ID, "maintenance-banner").is_displayed()
    db.session.remove()
    assert settings_service.maintenance_state()["enabled"]
    assert _console_errors(browser) == []


def test_panels_and_badges_follow_decisions_and_the_queue_follows_the_toast(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    factory,
    payout_wire,
):
    from selenium.webdriver.common.by import By

    from tests.console.seeding import verified_player, withdrawal
    from tests.payments_helpers import sandbox_gateway

    sandbox_gateway()
    manager = make_staff("manager")
    player = factory.player(username="stale_panels", currency="EUR")
    payee = verified_player(factory, 500_00, username="queue_payee")
    first = withdrawal(payee, "40.00").id
    withdrawal(payee, "60.00")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))

    # An adjustment: wallets swap, and the ledger and history panels reload on their own.
    browser.get(f"{live_server}/admin/players/{player.id}")
    assert "No ledger movements yet" in browser.find_element(By.ID, "player-ledger").text
    browser.execute_script("window.__stillSamePage = true;")
    browser.find_element(By.CSS_SELECTOR, 'a[data-action="adjust-balance"]').click()
    dialog = _open_modal(browser)
    dialog.find_element(By.NAME, "amount").send_keys("25.00")
    dialog.find_element(By.NAME, "reason").send_keys("Goodwill")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: "adjustment" in d.find_element(By.ID, "player-ledger").text)
    _wait(browser, lambda d: "wallet.adjust" in d.find_element(By.ID, "player-history").text)
    assert browser.execute_script("return window.__stillSamePage === true")

    # Withdrawal decisions: the menu badge and the pending count follow.
    browser.find_element(By.LINK_TEXT, "Withdrawals").click()
    _wait(browser, lambda d: d.find_elements(By.ID, f"withdrawal-row-{first}"))
    browser.execute_script("window.__stillSamePage = true;")
    assert browser.find_element(By.ID, "nav-count-withdrawals").get_attribute("data-count") == "2"
    assert "2 pending withdrawals" in browser.find_element(By.ID, "withdrawals-pending").text
    browser.find_element(
        By.CSS_SELECTOR, f'#withdrawal-row-{first} a[data-action="reject"]'
    ).click()
    dialog = _open_modal(browser)
    dialog.find_element(By.NAME, "reason").send_keys("Source of funds unclear")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "nav-count-withdrawals").get_attribute("data-count") == "1",
    )
    _wait(
        browser,
        lambda d: "1 pending withdrawal" in d.find_element(By.ID, "withdrawals-pending").text,
    )

    # A new request arrives while the queue is open: the toast and the queue row both appear.
    _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '#live-toasts[data-live="connected"]'),
        timeout=20,
    )
    late = withdrawal(payee, "75.00").id
    _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '.toast[data-type="withdrawal_requested"]'),
        timeout=20,
    )
    _wait(browser, lambda d: d.find_elements(By.ID, f"withdrawal-row-{late}"))
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "nav-count-withdrawals").get_attribute("data-count") == "2",
    )
    assert browser.execute_script("return window.__stillSamePage === true")
    _shot(browser, "21-queue-follows-toast")
    assert _console_errors(browser) == []


def test_the_promotion_form_follows_the_type_and_the_player_picker_suggests(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    factory,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    factory.player(username="picker_ada", email="ada@picker.test")
    manager = make_staff("manager")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))

    browser.get(f"{live_server}/admin/promotions/new")
    kind = Select(_wait(browser, lambda d: d.find_element(By.ID, "type")))

    def shown(field_id: str) -> bool:
        return browser.find_element(By.ID, field_id).is_displayed()

    kind.select_by_value("deposit_match")
    assert shown("match_percent")
    assert not shown("bonus_amount")
    assert not shown("cashback_percent")
    assert shown("wagering_multiplier")  # common to every type
    kind.select_by_value("cashback")
    assert shown("cashback_percent")
    assert not shown("match_percent")
    visible = browser.execute_script(
        "return [...document.querySelectorAll('#schema-form-panel .field')]"
        ".filter(e => e.offsetParent !== null).length"
    )
    everything = len(browser.find_elements(By.CSS_SELECTOR, "#schema-form-panel .field"))
    assert visible < everything
    _shot(browser, "22-promotion-form-cashback")

    browser.get(f"{live_server}/admin/bets")
    picker = _wait(browser, lambda d: d.find_element(By.ID, "f-player"))
    picker.send_keys("picker")
    _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '#f-player-options option[value="picker_ada"]'),
    )
    assert _console_errors(browser) == []
