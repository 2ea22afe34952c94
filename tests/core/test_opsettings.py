"""The typed operator settings: ``GET/PUT /api/admin/settings`` and the readers that use them."""

from __future__ import annotations

from app.core import opsettings, settings
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog
from app.payments import deposits

URL = "/api/admin/settings"


def _by_key(body) -> dict:
    return {row["key"]: row for row in body["data"]["settings"]}


def test_get_lists_every_declared_setting_with_its_default_from_the_environment(
    app, client, factory, token_for, monkeypatch
):
    monkeypatch.setitem(app.config, "DEPOSIT_PENDING_TTL_MINUTES", 45)
    response = client.get(URL, headers=token_for(factory.staff("admin")))
    assert response.status_code == 200
    rows = _by_key(response.get_json())
    assert set(rows) == set(opsettings.BY_KEY)
    ttl = rows["deposit_pending_ttl_minutes"]
    assert ttl["value"] == 45
    assert ttl["default"] == 45
    assert ttl["source"] == "default"
    assert ttl["env"] == "DEPOSIT_PENDING_TTL_MINUTES"
    assert (ttl["type"], ttl["minimum"], ttl["maximum"]) == ("int", 0, 7 * 24 * 60)
    assert rows["maintenance_mode"]["value"] is False
    assert rows["welcome_duplicate_signals"]["choices"] == ["device", "ip", "payment"]


def test_put_changes_audits_and_takes_effect_at_once(client, factory, token_for):
    admin = factory.staff("admin")
    response = client.put(
        URL,
        json={
            "settings": {"deposit_pending_ttl_minutes": 15, "aml_large_deposit": 100_00},
            "reason": "fraud wave",
        },
        headers=token_for(admin),
    )
    assert response.status_code == 200, response.get_json()
    rows = _by_key(response.get_json())
    assert rows["deposit_pending_ttl_minutes"]["value"] == 15
    assert rows["deposit_pending_ttl_minutes"]["source"] == "override"
    assert deposits.pending_ttl().total_seconds() == 15 * 60
    assert opsettings.value("aml_large_deposit") == 100_00
    audits = db.session.query(AuditLog).filter_by(action="settings.update").all()
    assert {row.target_id for row in audits} == {
        "ops.deposit_pending_ttl_minutes",
        "ops.aml_large_deposit",
    }
    row = next(r for r in audits if r.target_id == "ops.deposit_pending_ttl_minutes")
    assert (row.actor_id, row.reason) == (admin.id, "fraud wave")
    assert row.before == {"value": None}
    assert row.after == {"value": 15}

    # The same value again writes no audit row; null returns to the environment's default.
    client.put(URL, json={"settings": {"aml_large_deposit": 100_00}}, headers=token_for(admin))
    assert db.session.query(AuditLog).filter_by(action="settings.update").count() == 2
    back = client.put(
        URL, json={"settings": {"deposit_pending_ttl_minutes": None}}, headers=token_for(admin)
    )
    assert _by_key(back.get_json())["deposit_pending_ttl_minutes"]["source"] == "default"
    assert deposits.pending_ttl().total_seconds() == 60 * 60


def test_bad_values_are_400s_naming_each_field_and_nothing_is_written(client, factory, token_for):
    response = client.put(
        URL,
        json={
            "settings": {
                "deposit_pending_ttl_minutes": -1,
                "aml_min_play_percent": "50",
                "maintenance_mode": "yes",
                "welcome_duplicate_signals": ["device", "phone"],
                "no_such_setting": 1,
                "kyc_withdrawal_threshold": 100,  # valid, but the request fails as a whole
            }
        },
        headers=token_for(factory.staff("admin")),
    )
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == "VALIDATION_ERROR"
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert errors == {
        "settings.deposit_pending_ttl_minutes": "Must be at least 0",
        "settings.aml_min_play_percent": "Must be an integer",
        "settings.maintenance_mode": "Must be true or false",
        "settings.welcome_duplicate_signals": (
            "Unknown value(s) phone; choose from device, ip, payment"
        ),
        "settings.no_such_setting": "Unknown setting",
    }
    assert opsettings.value("kyc_withdrawal_threshold") == 200_00
    assert db.session.query(AuditLog).filter_by(action="settings.update").count() == 0
    empty = client.put(URL, json={"settings": {}}, headers=token_for(factory.staff("admin")))
    assert empty.status_code == 400


def test_only_an_admin_may_read_or_write(client, factory, token_for):
    for role in ("manager", "support"):
        headers = token_for(factory.staff(role))
        assert client.get(URL, headers=headers).status_code == 403
        put = client.put(URL, json={"settings": {"maintenance_mode": True}}, headers=headers)
        assert put.status_code == 403
    assert client.get(URL).status_code == 401
    assert settings.maintenance_state()["enabled"] is False


def test_maintenance_through_the_registry_is_the_gate_the_player_api_sees(
    client, factory, token_for
):
    admin = factory.staff("admin")
    response = client.put(
        URL,
        json={"settings": {"maintenance_mode": True, "maintenance_message": " Back at 3 "}},
        headers=token_for(admin),
    )
    assert response.status_code == 200
    assert settings.maintenance_state() == {"enabled": True, "message": "Back at 3"}
    status = client.get("/api/status").get_json()["data"]
    assert (status["maintenance"], status["message"]) == (True, "Back at 3")
    # Turning it off keeps the message; the console's switch and the registry share one row.
    client.put(URL, json={"settings": {"maintenance_mode": False}}, headers=token_for(admin))
    assert settings.maintenance_state() == {"enabled": False, "message": "Back at 3"}
    with atomic():
        settings.set_maintenance(True, message="console")
    rows = _by_key(client.get(URL, headers=token_for(admin)).get_json())
    assert (rows["maintenance_mode"]["value"], rows["maintenance_message"]["value"]) == (
        True,
        "console",
    )


def test_an_invalid_stored_value_falls_back_to_the_default(app):
    with atomic():
        settings.put("ops.aml_velocity_count", "many")
    assert opsettings.value("aml_velocity_count") == app.config["AML_VELOCITY_COUNT"]
