"""In a real browser: a player adds and verifies a phone through the live API (the code read
from the development SMS backend), then support staff see its state on the player page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import requests

from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _shot,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)
from tests.identity.sms_helpers import last_code

pytestmark = pytest.mark.browser

NUMBER = "+35699123456"
PASSWORD = "Passw0rd-Long-1!"


def test_support_sees_a_players_verified_and_unverified_phones(
    app,
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    factory,
    make_staff,
):
    from selenium.webdriver.common.by import By

    shutil.rmtree(Path(app.config["SMS_DIR"]), ignore_errors=True)
    player = factory.player()
    token = requests.post(
        f"{live_server}/api/auth/login",
        json={"username": player.username, "password": PASSWORD},
        timeout=10,
    ).json()["token"]["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    added = requests.post(
        f"{live_server}/api/user/phones", json={"number": NUMBER}, headers=headers, timeout=10
    )
    assert added.status_code == 201, added.text
    phone_id = added.json()["data"]["id"]
    with app.app_context():
        code = last_code(NUMBER)
    verified = requests.post(
        f"{live_server}/api/user/phones/{phone_id}/verify",
        json={"code": code},
        headers=headers,
        timeout=10,
    )
    assert verified.status_code == 200, verified.text
    second = requests.post(
        f"{live_server}/api/user/phones", json={"number": "+447400123456"}, headers=headers,
        timeout=10,
    )  # fmt: skip
    assert second.status_code == 201, second.text

    support = make_staff("support")
    _sign_in(browser, live_server, support.user.username, support.code())
    _wait(browser, lambda d: "/admin/login" not in d.current_url)
    browser.get(f"{live_server}/admin/players/{player.id}")
    panel = _wait(browser, lambda d: d.find_elements(By.ID, "player-contact"))[0]
    rows = panel.find_elements(By.CSS_SELECTOR, "tbody tr")
    text = {re.sub(r"\s+", " ", row.text) for row in rows}
    assert any(NUMBER in t and "primary" in t and "Verified" in t for t in text), text
    assert any("+447400123456" in t and "Unverified" in t for t in text), text
    browser.execute_script("arguments[0].scrollIntoView()", panel)
    _shot(browser, "30-player-phones")
    assert _console_errors(browser) == []
