"""Every main console page on a phone (390x844) and a desktop (1440x900), in a real browser.

A measurement check per page and size: the document is never wider than the viewport
(``scrollWidth <= innerWidth``), and on the phone the controls are touch-sized and the modal
stays on screen. Screenshots of each page and size go to ``$TMPDIR/jx-console-layout/``
(``JX_LAYOUT_SHOTS`` chooses another directory) for a human to look at.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

from app.core.extensions import db
from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _open_modal,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)

pytestmark = pytest.mark.browser

PHONE = (390, 844)
DESKTOP = (1440, 900)

#: The pages an Admin reaches from the menu, and the detail pages behind them.
PAGES = [
    "/admin/",
    "/admin/players",
    "/admin/players/{player}",
    "/admin/kyc",
    "/admin/kyc/{kyc}",
    "/admin/withdrawals",
    "/admin/withdrawals/{withdrawal}",
    "/admin/deposits",
    "/admin/transactions",
    "/admin/bets",
    "/admin/callbacks",
    "/admin/games",
    "/admin/providers",
    "/admin/reports/financial",
    "/admin/reports/providers",
    "/admin/reports/players",
    "/admin/promotions",
    "/admin/promotions/new",
    "/admin/jackpots",
    "/admin/jackpots/{pool}",
    "/admin/jackpots/new",
    "/admin/lottery",
    "/admin/lottery/{draw}",
    "/admin/lottery/new",
    "/admin/tournaments",
    "/admin/tournaments/new",
    "/admin/affiliates",
    "/admin/audit",
    "/admin/staff",
    "/admin/staff/new",
    "/admin/settings",
    "/admin/jobs",
    "/admin/exports",
    "/admin/support",
    "/admin/crm/segments",
    "/admin/crm/broadcasts",
    "/admin/erasure-requests",
]


@pytest.fixture
def shots_dir() -> Path:
    where = os.environ.get("JX_LAYOUT_SHOTS") or Path(tempfile.gettempdir()) / "jx-console-layout"
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def records(
    app,
    factory,
    live_server,  # noqa: F811 - the fixture imported above
) -> dict[str, int]:
    """One of each record the detail pages show, written through the real services."""
    from app.bonus import promotions
    from app.core.base import utcnow
    from app.prizes import jackpots, lottery
    from tests.console.seeding import kyc_submission, verified_player, withdrawal
    from tests.moneykit import open_table
    from tests.payments_helpers import sandbox_gateway

    sandbox_gateway()
    player = factory.player(
        username="layout_player_with_a_rather_long_name",
        email="a.very.long.address.for.layout@example-casino-operator.test",
        country="MT",
        first_name="Ada",
        last_name="Lovelace",
    )
    payee = verified_player(factory, 1_234_567_89, username="layout_payee")
    table = open_table(app.test_client(), factory)
    table.bet("layout-bet", "1.00")
    now = utcnow()
    promotion = promotions.create_promotion(
        {"name": "Layout reload", "type": "reload", "currency": "EUR", "match_percent": 50}
    )
    pool = jackpots.create_pool(
        {"name": "Layout pot", "currency": "EUR", "seed_amount": "10", "contribution_percent": "1"},
        actor=None,
    )
    draw = lottery.create(
        {"title": "Layout draw", "currency": "EUR", "prize_amount": "10", "ticket_price": "1",
         "max_tickets": 10, "sales_open_at": now, "sales_close_at": now + timedelta(days=1)},
        actor=None,
    )  # fmt: skip
    ids = {
        "player": player.id,
        "promotion": promotion.id,
        "pool": pool.id,
        "draw": draw.id,
        "kyc": kyc_submission(player, docs=("passport",)).id,
        "withdrawal": withdrawal(payee, "40.00").id,
    }
    db.session.commit()
    return ids


def _set_viewport(driver, size: tuple[int, int]) -> None:
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def _measure(driver, width: int) -> dict:
    # On a phone an over-wide page is zoomed out (innerWidth grows): compare with the device.
    return driver.execute_script(
        """
        const width = arguments[0];
        const doc = document.documentElement;
        const wide = [];
        for (const el of document.querySelectorAll('body *')) {
          const r = el.getBoundingClientRect();
          if (r.width && r.right > width + 1 && getComputedStyle(el).position !== 'fixed'
              && !el.closest('.table-wrap, .panel, dialog, .sidebar')) {
            wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                      (el.className && el.className.baseVal === undefined ? '.' + el.className : '')
                      + ' ' + Math.round(r.right));
          }
        }
        return {scroll: doc.scrollWidth, body: document.body.scrollWidth,
                viewport: doc.clientWidth, wide: wide.slice(0, 8)};
        """,
        width,
    )


def _small_controls(driver) -> list[str]:
    """Visible buttons and inputs in the page that are under 40 px high (touch size)."""
    return driver.execute_script(
        """
        const small = [];
        for (const el of document.querySelectorAll(
            '#content .btn, #content button, #content input:not([type=hidden]):not([type=checkbox])'
            + ':not([type=radio]), #content select, .menu-toggle')) {
          const r = el.getBoundingClientRect();
          if (r.width && r.height && r.height < 40) {
            const what = el.textContent.trim() || el.name || el.tagName;
            small.push(what + ' ' + Math.round(r.height));
          }
        }
        return small.slice(0, 8);
        """
    )


def test_no_console_page_is_wider_than_a_phone_or_a_desktop(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    records,
    shots_dir,
):
    from selenium.webdriver.common.by import By

    admin = make_staff("admin")
    problems: list[str] = []
    _set_viewport(browser, PHONE)  # the sign-in page first
    browser.get(f"{live_server}/admin/login")
    found = _measure(browser, PHONE[0])
    if found["scroll"] > PHONE[0]:
        problems.append(f"390px /admin/login: {found['scroll']}px wide {found['wide']}")
    browser.save_screenshot(str(shots_dir / "390x844-login.png"))
    _sign_in(browser, live_server, admin.user.username, admin.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    for size in (PHONE, DESKTOP):
        _set_viewport(browser, size)
        for path in PAGES:
            url = path.format(**records)
            browser.get(f"{live_server}{url}")
            _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "main#content"))
            assert "Access denied" not in browser.page_source, url
            found = _measure(browser, size[0])
            name = url.strip("/").replace("/", "_") or "dashboard"
            browser.save_screenshot(str(shots_dir / f"{size[0]}x{size[1]}-{name}.png"))
            if found["scroll"] > size[0] or found["body"] > size[0]:
                problems.append(f"{size[0]}px {url}: {found['scroll']}px wide {found['wide']}")
            if size == PHONE and (small := _small_controls(browser)):
                problems.append(f"{size[0]}px {url}: controls under 40 px: {small}")
    assert problems == [], "\n".join(problems)
    assert _console_errors(browser) == []


def test_phone_menu_button_opens_the_sidebar_and_the_modal_fits(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    records,
    shots_dir,
):
    from selenium.webdriver.common.by import By

    admin = make_staff("admin")
    _sign_in(browser, live_server, admin.user.username, admin.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    _set_viewport(browser, PHONE)
    browser.get(f"{live_server}/admin/players/{records['player']}")
    toggle = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-menu-toggle]"))
    sidebar = browser.find_element(By.ID, "sidebar")
    assert toggle.is_displayed()
    assert not sidebar.is_displayed() or sidebar.rect["x"] + sidebar.rect["width"] <= 0
    toggle.click()
    _wait(browser, lambda d: d.find_element(By.LINK_TEXT, "Withdrawals").is_displayed())
    assert toggle.get_attribute("aria-expanded") == "true"
    browser.save_screenshot(str(shots_dir / "phone-menu-open.png"))
    browser.find_element(By.LINK_TEXT, "Withdrawals").click()
    _wait(browser, lambda d: "/admin/withdrawals" in d.current_url)

    # The shared modal (balance adjustment) stays inside the phone's screen.
    browser.get(f"{live_server}/admin/players/{records['player']}")
    browser.find_element(By.CSS_SELECTOR, 'a[data-action="adjust-balance"]').click()
    dialog = _open_modal(browser)
    box = browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return [r.left, r.top, r.right, r.bottom, innerWidth, innerHeight];",
        dialog,
    )
    left, top, right, bottom, width, height = box
    assert left >= 0, box
    assert top >= 0, box
    assert right <= width, box
    assert bottom <= height, box
    browser.save_screenshot(str(shots_dir / "phone-modal.png"))

    # On a desktop the sidebar is always there and the menu button is not.
    _set_viewport(browser, DESKTOP)
    browser.get(f"{live_server}/admin/")
    assert browser.find_element(By.ID, "sidebar").is_displayed()
    assert not browser.find_element(By.CSS_SELECTOR, "[data-menu-toggle]").is_displayed()


def _contrast(rgb_a: tuple[int, ...], rgb_b: tuple[int, ...]) -> float:
    def luminance(rgb):
        channels = []
        for c in rgb[:3]:
            c = c / 255
            channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    high, low = sorted((luminance(rgb_a), luminance(rgb_b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _rgb(css: str) -> tuple[int, ...]:
    import re

    return tuple(int(float(n)) for n in re.findall(r"[\d.]+", css)[:3])


def test_charts_kpis_and_the_sidebar_focus_ring_are_readable(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    records,
    shots_dir,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    admin = make_staff("admin")
    _sign_in(browser, live_server, admin.user.username, admin.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    for size in (PHONE, DESKTOP):
        _set_viewport(browser, size)
        for path in ("/admin/", "/admin/reports/financial"):
            browser.get(f"{live_server}{path}")
            _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart"))
            found = browser.execute_script(
                """
                const out = {fonts: [], outside: [], wrapped: []};
                for (const svg of document.querySelectorAll('svg.chart')) {
                  const box = svg.getBoundingClientRect();
                  for (const el of svg.querySelectorAll('text, rect')) {
                    const r = el.getBoundingClientRect();
                    if (el.tagName === 'text') out.fonts.push(r.height);
                    if (r.left < box.left - 1 || r.right > box.right + 1 ||
                        r.top < box.top - 1 || r.bottom > box.bottom + 1) {
                      out.outside.push(el.tagName + ' ' + el.textContent);
                    }
                  }
                }
                for (const v of document.querySelectorAll('.kpi-value')) {
                  // The text's own width (a Range) against its box: cut off or wrapped?
                  const range = document.createRange();
                  range.selectNodeContents(v);
                  const lines = range.getClientRects().length;
                  if (range.getBoundingClientRect().width > v.clientWidth + 1 || lines > 1) {
                    out.wrapped.push(v.textContent);
                  }
                }
                return out;
                """
            )
            where = f"{size[0]}px {path}"
            assert found["fonts"], where
            # A text box is ~1.2x its font size: 11 px high means about 9 px text.
            assert min(found["fonts"]) >= 11, (where, min(found["fonts"]))
            assert found["outside"] == [], where
            assert found["wrapped"] == [], where
        browser.save_screenshot(str(shots_dir / f"charts-{size[0]}.png"))

    # Keyboard focus in the dark sidebar: a ring of at least 3:1 against the sidebar.
    _set_viewport(browser, DESKTOP)
    browser.get(f"{live_server}/admin/")
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the skip link
    body = browser.switch_to.active_element
    body.send_keys(Keys.TAB)  # the brand link in the sidebar
    focused = browser.switch_to.active_element
    assert focused.find_elements(By.XPATH, "ancestor::aside[@id='sidebar']")
    ring = browser.execute_script(
        "const s = getComputedStyle(arguments[0]);"
        "return [s.outlineStyle, s.outlineWidth, s.outlineColor,"
        " getComputedStyle(document.getElementById('sidebar')).backgroundColor];",
        focused,
    )
    style, width, color, background = ring
    assert style != "none"
    assert float(width.rstrip("px")) >= 2
    assert _contrast(_rgb(color), _rgb(background)) >= 3, ring
