"""Content in a real browser (headless Chromium): a manager writes a page whose body carries
a script payload, previews it and publishes it; the preview runs no script and the player
API serves the sanitised page. And the maintenance banner follows the setting live."""

from __future__ import annotations

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import alert_is_present

from app.core import settings
from app.core.db import atomic
from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _shot,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)

pytestmark = pytest.mark.browser

PAYLOAD = (
    "<h2>Fair play</h2><p>Be nice.</p>"
    "<script>window.__pwned = 'script';</script>"
    '<img src="x" onerror="window.__pwned = \'onerror\'">'
    '<a href="javascript:window.__pwned=\'link\'" id="evil-link">click me</a>'
    "<svg onload=\"window.__pwned='svg'\"></svg>"
)


def _fill(driver, field_id: str, value: str) -> None:
    element = driver.find_element(By.ID, field_id)
    element.clear()
    element.send_keys(value)


def test_a_page_with_a_script_payload_is_published_sanitised(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
):
    manager = make_staff("manager")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    browser.find_element(By.LINK_TEXT, "Content").click()
    browser.find_element(By.ID, "new-page").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "slug"))
    _fill(browser, "name", "Fair play rules")
    _fill(browser, "slug", "fair-play")
    browser.find_element(By.ID, "save-item").click()

    _wait(browser, lambda d: d.find_elements(By.ID, "add-language"))
    _fill(browser, "new-language", "en")
    browser.find_element(By.CSS_SELECTOR, "#add-language button[type=submit]").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "draft-form"))
    _fill(browser, "title", "Fair play")
    # send_keys types the payload as a person would (no JavaScript sets the value).
    _fill(browser, "body", PAYLOAD)
    _shot(browser, "content-draft-with-payload")
    browser.find_element(By.ID, "save-draft").click()

    body = _wait(browser, lambda d: d.find_elements(By.ID, "preview-body"))[0]
    assert body.find_element(By.TAG_NAME, "h2").text == "Fair play"
    assert body.find_elements(By.TAG_NAME, "script") == []
    assert body.find_elements(By.TAG_NAME, "svg") == []
    img = body.find_element(By.TAG_NAME, "img")
    assert img.get_attribute("onerror") is None
    link = body.find_element(By.LINK_TEXT, "click me")
    assert link.get_attribute("href") is None  # the javascript: URL was dropped
    link.click()
    assert browser.execute_script("return window.__pwned === undefined")
    stored = browser.find_element(By.ID, "preview-source").text
    assert "<script" not in stored
    assert "onerror" not in stored
    assert "javascript:" not in stored

    browser.find_element(By.CSS_SELECTOR, '#version-row-en button[data-action="publish"]').click()
    _wait(browser, alert_is_present()).accept()  # publishing asks first
    published = _wait(browser, lambda d: d.find_elements(By.ID, "published-body"))[0]
    assert published.find_element(By.TAG_NAME, "h2").text == "Fair play"
    assert published.find_elements(By.TAG_NAME, "script") == []
    assert "published" in browser.find_element(By.ID, "version-row-en").text
    _shot(browser, "content-published")

    page = requests.get(f"{live_server}/api/content/pages/fair-play?lang=en", timeout=10)
    assert page.status_code == 200
    data = page.json()["data"]
    assert data["title"] == "Fair play"
    assert "<h2>Fair play</h2>" in data["body"]
    for marker in ("<script", "onerror", "onload", "javascript:", "<svg", "__pwned"):
        assert marker not in data["body"]
    assert browser.execute_script("return window.__pwned === undefined")

    # The item page: unpublishing swaps the version's row in place (HTMX).
    browser.find_element(By.CSS_SELECTOR, ".crumbs a:nth-of-type(2)").click()
    _wait(browser, lambda d: d.find_elements(By.ID, "versions-table"))
    browser.execute_script("window.__stillSamePage = true;")
    browser.find_element(By.CSS_SELECTOR, '#version-row-en button[data-action="unpublish"]').click()
    _wait(
        browser,
        lambda d: (
            not d.find_elements(By.CSS_SELECTOR, '#version-row-en button[data-action="unpublish"]')
        ),
    )
    assert browser.execute_script("return window.__stillSamePage === true")
    assert "draft" in browser.find_element(By.ID, "version-row-en").text
    gone = requests.get(f"{live_server}/api/content/pages/fair-play", timeout=10)
    assert gone.status_code == 404
    # The payload's <img src="x"> 404s on purpose (an onerror would have fired); nothing else.
    errors = [e for e in _console_errors(browser) if "Failed to load resource" not in e]
    assert errors == []


def test_the_console_shows_the_maintenance_banner_as_soon_as_maintenance_is_on(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
):
    manager = make_staff("manager")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    assert browser.find_elements(By.ID, "maintenance-banner") == []
    _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '#live-toasts[data-live="connected"]'),
        timeout=20,
    )
    browser.execute_script("window.__stillSamePage = true;")
    try:
        with atomic():  # another "process" (the CLI's path) switches maintenance on
            settings.set_maintenance(True, message="Back at six")
        banner = _wait(browser, lambda d: d.find_elements(By.ID, "maintenance-banner"), 20)[0]
        assert "Back at six" in banner.text
        assert browser.execute_script("return window.__stillSamePage === true")
        _shot(browser, "content-maintenance-banner")
        browser.refresh()  # and the server renders it on every page while it is on
        assert "Back at six" in browser.find_element(By.ID, "maintenance-banner").text
        _wait(
            browser,
            lambda d: d.find_elements(By.CSS_SELECTOR, '#live-toasts[data-live="connected"]'),
            timeout=20,
        )
        with atomic():
            settings.set_maintenance(False)
        _wait(browser, lambda d: not d.find_elements(By.ID, "maintenance-banner"), 20)
    finally:
        with atomic():
            settings.set_maintenance(False)
