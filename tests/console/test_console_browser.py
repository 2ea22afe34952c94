"""The back office in a real browser: headless Chromium driven by Selenium.

The app runs in a background thread (werkzeug) against the test PostgreSQL database with real
commits (``committed_db``), with CSRF enforced as in production. Screenshots go to
``test-artifacts/`` for a human to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import pyotp
import pytest
from werkzeug.serving import make_server

from app.core.extensions import db
from app.identity.models import User
from tests.console.conftest import PASSWORD

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def browser_available():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true but {', '.join(missing)} is missing")
        pytest.skip(
            f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        )


@pytest.fixture
def live_server(app, requires_postgres, committed_db, csrf_enforced):
    # A threaded server and the test both write with real commits: PostgreSQL's row locks
    # handle that; one SQLite file would answer "database is locked".
    from app.core.extensions import socketio

    # Flask-SocketIO keeps one process-wide ``socketio.server``, and every create_app() in the
    # suite replaces it; room joins (``join_room``) go through it. Point it back at the
    # Socket.IO server this app actually serves, for the live server's lifetime.
    previous = socketio.server
    socketio.server = _served_socketio_server(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    socketio.server = previous


def _served_socketio_server(app):
    from engineio import WSGIApp

    layer = app.wsgi_app
    while not isinstance(layer, WSGIApp):
        layer = getattr(layer, "app", None) or getattr(layer, "wsgi_app", None)
        assert layer is not None, "the app is not wrapped by Socket.IO"
    return layer.engineio_app


@pytest.fixture
def browser(browser_available):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="jx-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1366,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout: float = 10):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # HTMX swaps rows in place: an element found a moment ago may be gone; look again.
    wait = WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition)


def _shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"console-{name}.png"))


def _sign_in(driver, base: str, username: str, code: str = "") -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base}/admin/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    if code:
        driver.find_element(By.ID, "code").send_keys(code)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def _console_errors(driver) -> list[str]:
    """Console messages that mean something broke (CSP violations, script errors)."""
    try:
        logs = driver.get_log("browser")
    except Exception:  # not every driver exposes the log; the assertions still run
        return []
    return [entry["message"] for entry in logs if entry["level"] == "SEVERE"]


def test_manager_signs_in_with_totp_and_suspends_a_player_through_the_modal(
    live_server, browser, make_staff, factory
):
    from selenium.webdriver.common.by import By

    manager = make_staff("manager")
    player = factory.player(username="ada_browser", country="MT", email="ada@browser.test")
    for n in range(3):
        factory.player(username=f"filler{n}", country="DE")
    player_id = player.id

    browser.get(f"{live_server}/admin/login")
    _shot(browser, "01-login")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    assert "Dashboard" in browser.title
    _shot(browser, "02-dashboard-manager")

    browser.find_element(By.LINK_TEXT, "Players").click()
    row_css = f"#player-row-{player_id}"
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row_css))
    _shot(browser, "03-players")
    # A marker on the page: it survives only if the update is a partial swap, not a reload.
    browser.execute_script("window.__stillSamePage = true;")

    browser.find_element(By.CSS_SELECTOR, f'{row_css} a[data-action="suspend"]').click()
    dialog = _wait(
        browser,
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, "#modal-root dialog") if e.is_displayed()),
            None,
        ),
    )
    assert browser.execute_script("return document.querySelector('#modal-root dialog').open")
    dialog.find_element(By.NAME, "reason").send_keys("Chargeback under review")
    dialog.find_element(By.CSS_SELECTOR, 'input[value="24h"]').click()
    _shot(browser, "04-suspend-modal")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    _wait(
        browser,
        lambda d: (
            "badge-suspended" in d.find_element(By.CSS_SELECTOR, row_css).get_attribute("innerHTML")
        ),
    )
    assert browser.execute_script("return window.__stillSamePage === true")
    assert not browser.find_elements(By.CSS_SELECTOR, "#modal-root dialog")
    flash = browser.find_element(By.CSS_SELECTOR, "#flash-region .flash-success").text
    assert "Suspend" in flash
    assert "ada_browser" in flash
    _shot(browser, "05-player-suspended")

    db.session.remove()
    user = db.session.get(User, player_id)
    assert user.status == "suspended"
    assert user.status_reason == "Chargeback under review"
    assert _console_errors(browser) == []


def test_support_does_not_see_settings_in_the_navigation(live_server, browser, make_staff):
    from selenium.webdriver.common.by import By

    support = make_staff("support")
    _sign_in(browser, live_server, support.user.username, support.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "nav .nav"))
    labels = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav .nav a")]
    assert "Players" in labels
    assert "Settings" not in labels
    assert "Staff" not in labels
    assert "Audit log" not in labels
    _shot(browser, "06-dashboard-support")
    browser.get(f"{live_server}/admin/settings")
    assert "Access denied" in browser.page_source
    _shot(browser, "07-support-settings-403")


def test_a_new_manager_enrols_totp_from_the_qr_page_and_signs_in(live_server, browser, make_staff):
    from selenium.webdriver.common.by import By

    manager = make_staff("manager", with_totp=False)
    _sign_in(browser, live_server, manager.user.username)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".qr svg"))
    _shot(browser, "08-totp-setup")
    secret = browser.find_element(By.CSS_SELECTOR, "code.secret").text
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
    browser.find_element(By.ID, "code").send_keys(pyotp.TOTP(secret).now())
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # The recovery codes, shown this once, before going on.
    codes = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#recovery-codes code"))
    texts = [c.text for c in codes]
    assert len(texts) == 10
    assert all(re.fullmatch(r"[A-Z0-9]{5}-[A-Z0-9]{5}", t) for t in texts)
    _shot(browser, "08b-recovery-codes")
    browser.find_element(By.ID, "recovery-codes-continue").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    assert "Two-factor authentication is set up" in browser.page_source

    browser.get(f"{live_server}/admin/audit")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#audit-table"))
    assert "staff.totp.enrol" in browser.page_source
    _shot(browser, "09-audit-log")
    db.session.remove()
    assert db.session.get(User, manager.user.id).totp_enabled

    # A lost phone: sign out, sign in with a recovery code instead of the 6-digit code.
    browser.find_element(
        By.CSS_SELECTOR, ".whoami form[action$='/logout'] button[type=submit]"
    ).click()
    _wait(browser, lambda d: d.find_elements(By.ID, "username"))
    _sign_in(browser, live_server, manager.user.username, texts[0])
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    browser.find_element(By.LINK_TEXT, "Recovery codes").click()
    remaining = _wait(browser, lambda d: d.find_elements(By.ID, "recovery-remaining"))
    assert remaining[0].text == "9"
    _shot(browser, "09b-recovery-codes-left")


def _open_modal(driver):
    from selenium.webdriver.common.by import By

    return _wait(
        driver,
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, "#modal-root dialog") if e.is_displayed()),
            None,
        ),
    )


def test_manager_clears_kyc_and_withdrawals_and_exports_the_financial_report(
    live_server, browser, make_staff, factory, payout_wire
):
    from selenium.webdriver.common.by import By

    from app.compliance.models import KycSubmission
    from app.payments.models import PaymentTransaction
    from tests.console.seeding import kyc_submission, verified_player, withdrawal
    from tests.payments_helpers import sandbox_gateway

    sandbox_gateway()
    manager = make_staff("manager")
    applicant = factory.player(username="kyc_applicant", first_name="Grace", last_name="Hopper")
    submission_id = kyc_submission(applicant).id
    payee = verified_player(factory, 400_00, username="payee_ok")
    doubtful = verified_player(factory, 300_00, username="payee_doubtful")
    good_id = withdrawal(payee, "75.00").id
    bad_id = withdrawal(doubtful, "120.00").id
    downloads = tempfile.mkdtemp(prefix="jx-downloads-")
    browser.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads}
    )

    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    _shot(browser, "10-dashboard-money")

    # KYC: open the submission, see the document inline, approve through the modal.
    browser.find_element(By.LINK_TEXT, "KYC review").click()
    _wait(browser, lambda d: d.find_elements(By.ID, f"kyc-row-{submission_id}"))
    _shot(browser, "11-kyc-queue")
    browser.find_element(By.LINK_TEXT, f"#{submission_id}").click()
    image = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".doc img"))[0]
    _wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    browser.execute_script("window.__stillSamePage = true;")
    browser.find_element(By.CSS_SELECTOR, '#kyc-panel a[data-action="approve"]').click()
    dialog = _open_modal(browser)
    dialog.find_element(By.NAME, "note").send_keys("Passport and bill match")
    _shot(browser, "12-kyc-approve-modal")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(
        browser,
        lambda d: "badge-approved" in d.find_element(By.ID, "kyc-panel").get_attribute("innerHTML"),
    )
    assert browser.execute_script("return window.__stillSamePage === true")
    _shot(browser, "13-kyc-approved")

    # Withdrawals: approve one, reject the other, each through the modal, rows swapped.
    browser.find_element(By.LINK_TEXT, "Withdrawals").click()
    _wait(browser, lambda d: d.find_elements(By.ID, f"withdrawal-row-{bad_id}"))
    _shot(browser, "14-withdrawals-queue")
    browser.find_element(
        By.CSS_SELECTOR, f'#withdrawal-row-{good_id} a[data-action="approve"]'
    ).click()
    _open_modal(browser).find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(
        browser,
        lambda d: (
            "badge-approved"
            in d.find_element(By.ID, f"withdrawal-row-{good_id}").get_attribute("innerHTML")
            or "badge-processing"
            in d.find_element(By.ID, f"withdrawal-row-{good_id}").get_attribute("innerHTML")
        ),
    )
    _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#modal-root dialog"))
    browser.find_element(
        By.CSS_SELECTOR, f'#withdrawal-row-{bad_id} a[data-action="reject"]'
    ).click()
    dialog = _open_modal(browser)
    dialog.find_element(By.NAME, "reason").send_keys("Deposit source not verified")
    _shot(browser, "15-withdrawal-reject-modal")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(
        browser,
        lambda d: (
            "badge-rejected"
            in d.find_element(By.ID, f"withdrawal-row-{bad_id}").get_attribute("innerHTML")
        ),
    )
    _shot(browser, "16-withdrawals-decided")

    # The financial report, its chart, and the CSV export.
    browser.find_element(By.LINK_TEXT, "Reports").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#financial-table svg, svg.chart"))
    _shot(browser, "17-financial-report")
    browser.find_element(By.ID, "export-csv").click()
    csv_files = _wait(browser, lambda d: list(Path(downloads).glob("financial-*.csv")), timeout=15)
    text = csv_files[0].read_text()
    assert text.splitlines()[0] == (
        "period,currency,bets,wins,ggr,bonus_cost,payment_fees,ngr,deposits,withdrawals"
    )
    assert text.splitlines()[-1].startswith("total,EUR,")
    assert ",700.00," in text.splitlines()[-1]  # deposits: the two payees funded 400 + 300
    assert _console_errors(browser) == []

    db.session.remove()
    assert db.session.get(KycSubmission, submission_id).status == "approved"
    assert db.session.get(PaymentTransaction, good_id).status in ("approved", "processing")
    rejected = db.session.get(PaymentTransaction, bad_id)
    assert (rejected.status, rejected.reason) == ("rejected", "Deposit source not verified")
    shutil.rmtree(downloads, ignore_errors=True)


def test_staff_see_a_new_withdrawal_appear_live_without_reloading(
    live_server, browser, make_staff, factory
):
    from selenium.webdriver.common.by import By

    from tests.console.seeding import verified_player, withdrawal
    from tests.payments_helpers import sandbox_gateway

    sandbox_gateway()
    manager = make_staff("manager")
    payee = verified_player(factory, 200_00, username="live_payee")
    _sign_in(browser, live_server, manager.user.username, manager.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '#live-toasts[data-live="connected"]'),
        timeout=20,
    )
    browser.execute_script("window.__stillSamePage = true;")

    withdrawal(payee, "50.00")  # the player asks, in another "process" than the console

    toast = _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, '.toast[data-type="withdrawal_requested"]'),
        timeout=20,
    )[0]
    assert "live_payee" in toast.text
    assert "50.00 EUR" in toast.text
    assert browser.execute_script("return window.__stillSamePage === true")
    _shot(browser, "18-live-withdrawal-toast")
    assert _console_errors(browser) == []
