"""The JxOriginals Dice and Slot pages in a real browser (demo mode: play money, no wallet):
responsive at 390x844 and 1440x900, touch-size controls, a round played through the page."""

from __future__ import annotations

import pytest

from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _wait,
    browser,
    browser_available,
    live_server,
)
from tests.console.test_console_layout_browser import (  # noqa: F401 - fixture
    DESKTOP,
    PHONE,
    _set_viewport,
    shots_dir,
)

pytestmark = pytest.mark.browser

SYMBOLS = {"SEVEN", "BAR", "BELL", "PLUM", "ORANGE", "LEMON", "CHERRY"}


def _fits_and_touch_size(driver, width: int) -> tuple[int, list[str]]:
    return driver.execute_script(
        """
        const small = [];
        for (const el of document.querySelectorAll('#jxo-game button, #jxo-game input')) {
          const r = el.getBoundingClientRect();
          if (r.width && r.height && r.height < 44 && el.type !== 'range') {
            small.push((el.id || el.textContent.trim() || el.name) + ' ' + Math.round(r.height));
          }
        }
        return [document.documentElement.scrollWidth, small];
        """
    )


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_dice_and_slot_are_playable_game_screens(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    shots_dir,  # noqa: F811 - the fixture imported above
    size,
):
    from selenium.webdriver.common.by import By

    _set_viewport(browser, size)
    browser.get(f"{live_server}/originals/launch/jxo-dice?mode=demo&currency=EUR")
    roll = _wait(browser, lambda d: d.find_element(By.ID, "jxo-play"))
    scroll, small = _fits_and_touch_size(browser, size[0])
    assert scroll <= size[0]
    assert small == []
    assert roll.rect["height"] >= 56
    assert "96.19140625" not in browser.page_source  # not on the dice page anyway
    assert "RTP 99.00%" in browser.find_element(By.CSS_SELECTOR, ".jxo-bar").text

    # The slider moves the target; chance, multiplier and payout follow.
    slider = browser.find_element(By.ID, "jxo-target-range")
    browser.execute_script(
        "arguments[0].value = 25; arguments[0].dispatchEvent(new Event('input'));", slider
    )
    assert browser.find_element(By.ID, "jxo-target").get_attribute("value") == "25.00"
    assert browser.find_element(By.ID, "jxo-chance").text == "25.00"
    assert browser.find_element(By.ID, "jxo-multiplier").text == "3.9600"
    browser.find_element(By.CSS_SELECTOR, '[data-stake="double"]').click()
    stake = browser.find_element(By.ID, "jxo-stake").get_attribute("value")
    assert float(stake) > 0
    balance = browser.find_element(By.ID, "jxo-balance").text
    roll.click()
    _wait(browser, lambda d: d.find_element(By.ID, "jxo-roll").text != "--.--")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#jxo-history tr"))
    assert browser.find_element(By.ID, "jxo-track-marker").is_displayed()
    _wait(browser, lambda d: d.find_element(By.ID, "jxo-balance").text != balance)
    browser.save_screenshot(str(shots_dir / f"originals-dice-{size[0]}.png"))

    browser.get(f"{live_server}/originals/launch/jxo-slot?mode=demo&currency=EUR")
    spin = _wait(browser, lambda d: d.find_element(By.ID, "jxo-play"))
    scroll, small = _fits_and_touch_size(browser, size[0])
    assert scroll <= size[0]
    assert small == []
    bar = browser.find_element(By.CSS_SELECTOR, ".jxo-bar").text
    assert "RTP 96.19%" in bar
    assert "96.19140625" not in bar
    cells = browser.find_elements(By.CSS_SELECTOR, "#jxo-reels .jxo-cell")
    assert len(cells) == 9
    # Symbols are pictures (an SVG per cell), at least 48 px on any screen.
    for cell in cells:
        assert cell.get_attribute("data-symbol") in SYMBOLS
        assert cell.find_element(By.TAG_NAME, "svg").rect["height"] >= 48
    for _ in range(3):
        spin.click()
        _wait(browser, lambda d: d.find_element(By.ID, "jxo-play").is_enabled())
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jxo-history tr")) >= 3)
    after = [c.get_attribute("data-symbol") for c in cells]
    assert set(after) <= SYMBOLS
    browser.save_screenshot(str(shots_dir / f"originals-slot-{size[0]}.png"))
    assert _console_errors(browser) == []
