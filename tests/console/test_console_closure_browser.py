"""In a real browser: a player closes their account through the live API, a manager sees the
closure on the player page and reopens it through the "Reopen" modal; the player signs in."""

from __future__ import annotations

import pytest
import requests

from app.core.extensions import db
from app.identity.models import User
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

PASSWORD = "Passw0rd-Long-1!"


def test_a_manager_reopens_a_closed_account_from_the_player_page(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    factory,
    make_staff,
):
    from selenium.webdriver.common.by import By

    player = factory.player()
    login = {"username": player.username, "password": PASSWORD}
    token = requests.post(f"{live_server}/api/auth/login", json=login, timeout=10).json()["token"][
        "access_token"
    ]
    closed = requests.post(
        f"{live_server}/api/user/close",
        json={"reason": "another_operator", "password": PASSWORD},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert closed.status_code == 200, closed.text
    assert requests.post(f"{live_server}/api/auth/login", json=login, timeout=10).status_code == 403

    manager = make_staff("manager")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: "/admin/login" not in d.current_url)
    browser.get(f"{live_server}/admin/players/{player.id}")
    closure = _wait(browser, lambda d: d.find_elements(By.ID, "player-closure"))[0]
    assert "another_operator" in closure.text
    browser.find_element(By.CSS_SELECTOR, '#player-panel a[data-action="reopen"]').click()
    dialog = _open_modal(browser)
    assert "self-excluded" in dialog.text
    dialog.find_element(By.NAME, "reason").send_keys("Player asked to come back")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser, lambda d: not d.find_elements(By.ID, "player-closure"))
    panel = browser.find_element(By.ID, "player-panel")
    assert "Active" in panel.text
    assert not panel.find_elements(By.CSS_SELECTOR, 'a[data-action="reopen"]')
    _shot(browser, "40-player-reopened")
    assert _console_errors(browser) == []
    db.session.remove()
    assert db.session.get(User, player.id).status == "active"
    assert requests.post(f"{live_server}/api/auth/login", json=login, timeout=10).status_code == 200
