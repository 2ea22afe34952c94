"""The settings page is generated from the registry the API uses (issue 18): every declared
setting appears, changes go through ``opsettings.put_many`` (validated, audited with before
and after), a bad value changes nothing, Reset returns to the default."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core import opsettings
from app.core.extensions import db
from app.core.models import AuditLog
from tests.console.test_console_browser import (  # noqa: F401 - fixtures and helpers
    _console_errors,
    _shot,
    _sign_in,
    _wait,
    browser,
    browser_available,
    live_server,
)


def _audits(key: str) -> list[AuditLog]:
    query = select(AuditLog).where(
        AuditLog.action == "settings.update", AuditLog.target_id == f"ops.{key}"
    )
    return list(db.session.scalars(query.order_by(AuditLog.id)))


def test_every_registered_setting_has_a_field_in_its_category(signed_in):
    admin, _ = signed_in("admin")
    page = admin.get("/admin/settings").get_data(as_text=True)
    for spec in opsettings.SPECS:
        assert f'name="{spec.key}"' in page, spec.key
        assert spec.env in page  # where its default comes from
    for category in {spec.category for spec in opsettings.SPECS}:
        assert f'id="settings-{category}"' in page
        assert f'action="/admin/settings/{category}"' in page


def test_a_change_is_validated_stored_audited_and_seen_by_the_api(signed_in):
    admin, staff = signed_in("admin")
    response = admin.post(
        "/admin/settings/risk",
        data={"aml_velocity_count": "7", "aml_min_play_percent": "50", "reason": "Q4 review"},
    )
    assert response.status_code == 302
    assert opsettings.value("aml_velocity_count") == 7
    [row] = _audits("aml_velocity_count")
    assert row.actor_id == staff.user.id
    assert row.before == {"value": None}
    assert row.after == {"value": 7}
    assert row.reason == "Q4 review"
    # The unchanged field of the same form (50 is the default) wrote nothing.
    assert _audits("aml_min_play_percent") == []
    page = admin.get("/admin/settings").get_data(as_text=True)
    assert "Overridden by an operator (default: 5)." in page


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("abc", "Must be an integer"),
        ("1e309", "Must be an integer"),
        ("1", "Must be at least 2"),
        ("1001", "Must be at most 1000"),
        ("-5", "Must be at least 2"),
        ("5.5", "Must be an integer"),
    ],
)
def test_a_bad_value_is_refused_on_the_page_and_changes_nothing(signed_in, raw, message):
    admin, _ = signed_in("admin")
    response = admin.post(
        "/admin/settings/risk", data={"aml_velocity_count": raw, "aml_large_deposit": "900000"}
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    # The other, valid field of the same form is not stored either: all or nothing.
    assert opsettings.value("aml_velocity_count") == 5
    assert opsettings.value("aml_large_deposit") == 5000_00
    assert _audits("aml_velocity_count") == []
    assert _audits("aml_large_deposit") == []


def test_a_list_setting_refuses_an_unknown_choice(signed_in):
    admin, _ = signed_in("admin")
    response = admin.post(
        "/admin/settings/payments", data={"unverified_email_blocks": ["withdraw", "poker"]}
    )
    assert response.status_code == 400
    assert "Unknown value(s) poker" in response.get_data(as_text=True)
    assert opsettings.value("unverified_email_blocks") == ["withdraw"]
    response = admin.post(
        "/admin/settings/payments", data={"unverified_email_blocks": ["withdraw", "deposit"]}
    )
    assert response.status_code == 302
    assert opsettings.value("unverified_email_blocks") == ["withdraw", "deposit"]


def test_saving_an_unchanged_form_writes_no_audit_row(signed_in):
    admin, _ = signed_in("admin")
    page = admin.post("/admin/settings/bonus", data={"welcome_duplicate_signals": []})
    assert page.status_code == 302
    assert _audits("welcome_duplicate_signals")  # emptied: a change
    before = len(db.session.scalars(select(AuditLog)).all())
    again = admin.post("/admin/settings/bonus", data={"welcome_duplicate_signals": []})
    assert again.status_code == 302
    assert "Nothing changed" in admin.get("/admin/settings").get_data(as_text=True)
    assert len(db.session.scalars(select(AuditLog)).all()) == before


def test_reset_returns_to_the_default_and_is_audited(signed_in):
    admin, _ = signed_in("admin")
    admin.post("/admin/settings/payments", data={"deposit_pending_ttl_minutes": "90"})
    assert opsettings.value("deposit_pending_ttl_minutes") == 90
    response = admin.post("/admin/settings/reset/deposit_pending_ttl_minutes")
    assert response.status_code == 302
    assert opsettings.value("deposit_pending_ttl_minutes") == 60
    last = _audits("deposit_pending_ttl_minutes")[-1]
    assert (last.before, last.after) == ({"value": 90}, {"value": None})
    assert admin.post("/admin/settings/reset/no_such_setting").status_code == 404
    assert admin.post("/admin/settings/no_such_category", data={}).status_code == 404


def test_only_admin_may_change_settings(signed_in):
    manager, _ = signed_in("manager")
    assert manager.get("/admin/settings").status_code == 403
    refused = manager.post("/admin/settings/risk", data={"aml_velocity_count": "9"})
    assert refused.status_code == 403
    assert manager.post("/admin/settings/reset/aml_velocity_count").status_code == 403
    assert opsettings.value("aml_velocity_count") == 5


@pytest.mark.browser
def test_admin_changes_a_setting_in_the_browser_and_a_bad_value_is_refused(
    live_server,  # noqa: F811 - the fixture imported above
    browser,  # noqa: F811 - the fixture imported above
    make_staff,
    app,
):
    from selenium.webdriver.common.by import By

    admin = make_staff("admin")
    db.session.commit()
    _sign_in(browser, live_server, admin.user.username, admin.code())
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".kpis"))
    browser.get(f"{live_server}/admin/settings")
    field = _wait(browser, lambda d: d.find_element(By.NAME, "withdrawal_dual_approval_threshold"))
    field.clear()
    field.send_keys("2500")
    browser.find_element(By.CSS_SELECTOR, "#settings-payments form button.btn-primary").click()
    _wait(browser, lambda d: "Saved: withdrawal_dual_approval_threshold" in d.page_source)
    _shot(browser, "30-settings-saved")
    field = browser.find_element(By.NAME, "withdrawal_dual_approval_threshold")
    assert field.get_attribute("value") == "2500"
    field.clear()
    field.send_keys("-1")
    browser.find_element(By.CSS_SELECTOR, "#settings-payments form button.btn-primary").click()
    _wait(browser, lambda d: "Must be at least 0" in d.page_source)
    _shot(browser, "31-settings-refused")
    db.session.remove()
    assert opsettings.value("withdrawal_dual_approval_threshold") == 2500
    # The refused form answers 400 (the console's convention); nothing else went wrong.
    assert [e for e in _console_errors(browser) if "400 (BAD REQUEST)" not in e] == []
