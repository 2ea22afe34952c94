"""Players, decisions through the modal, audit viewer, settings, staff, dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core import settings as settings_service
from app.core.base import utcnow
from app.core.extensions import db
from app.core.models import AuditLog
from app.identity.models import MANAGER, User
from tests.console.conftest import PASSWORD

HX = {"HX-Request": "true"}


def _audit(action: str, target_id=None) -> list[AuditLog]:
    query = select(AuditLog).where(AuditLog.action == action)
    if target_id is not None:
        query = query.where(AuditLog.target_id == str(target_id))
    return list(db.session.scalars(query.order_by(AuditLog.id)))


@pytest.fixture
def crowd(factory):
    """Players to search, filter and sort."""
    return {
        "ada": factory.player(username="ada_mt", email="ada@casino.test", country="MT"),
        "bo": factory.player(username="bo_de", email="bo@casino.test", country="DE"),
        "cy": factory.player(username="cy_de", email="cy@other.test", country="DE"),
    }


def _rows(html: str) -> list[str]:
    return [line for line in html.split("\n") if 'id="player-row-' in line]


def test_player_search_filters_by_username_email_status_and_country(signed_in, crowd):
    client, _ = signed_in("support")
    html = client.get("/admin/players?q=casino.test").get_data(as_text=True)
    assert "ada_mt" in html
    assert "bo_de" in html
    assert "cy_de" not in html
    html = client.get("/admin/players?country=de").get_data(as_text=True)
    assert "bo_de" in html
    assert "cy_de" in html
    assert "ada_mt" not in html
    crowd["bo"].status = "suspended"
    db.session.commit()
    html = client.get("/admin/players?status=suspended").get_data(as_text=True)
    assert len(_rows(html)) == 1
    assert "bo_de" in html
    empty = client.get("/admin/players?q=nobody-like-this").get_data(as_text=True)
    assert "No players match these filters." in empty


def test_player_list_never_shows_staff(signed_in, crowd):
    client, staff = signed_in("manager")
    html = client.get("/admin/players").get_data(as_text=True)
    assert f'id="player-row-{staff.user.id}"' not in html
    assert len(_rows(html)) == 3


def test_player_list_sorts_and_paginates(signed_in, crowd):
    client, _ = signed_in("support")
    html = client.get("/admin/players?sort=username&dir=asc&per_page=2").get_data(as_text=True)
    rows = _rows(html)
    assert len(rows) == 2
    assert html.index("ada_mt") < html.index("bo_de")
    assert "1\u20132 of 3 players" in html
    assert 'aria-sort="ascending"' in html
    page2 = client.get("/admin/players?sort=username&dir=asc&per_page=2&page=2")
    assert "cy_de" in page2.get_data(as_text=True)
    desc = client.get("/admin/players?sort=username&dir=desc").get_data(as_text=True)
    assert desc.index("cy_de") < desc.index("ada_mt")
    # Unknown sort columns and silly page numbers fall back instead of erroring.
    assert client.get("/admin/players?sort=password_hash&page=999&per_page=x").status_code == 200


def test_player_profile_shows_account_status_and_sign_in_fields(signed_in, player):
    client, _ = signed_in("manager")
    html = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    for text in (player.username, player.email, "Lovelace", "MT", "Last sign-in", "Status"):
        assert text in html
    assert f"/admin/players/{player.id}/suspend?context=panel" in html
    assert client.get("/admin/players/999999").status_code == 404


def test_a_staff_id_is_not_a_player_profile(signed_in):
    client, staff = signed_in("manager")
    assert client.get(f"/admin/players/{staff.user.id}").status_code == 404
    response = client.post(
        f"/admin/players/{staff.user.id}/ban", data={"reason": "no way"}, headers=HX
    )
    assert response.status_code == 404
    assert db.session.get(User, staff.user.id).status == "active"


def test_support_sees_players_but_no_action_buttons(signed_in, player):
    client, _ = signed_in("support")
    html = client.get(f"/admin/players/{player.id}").get_data(as_text=True)
    assert 'data-action="suspend"' not in html
    assert (
        client.post(f"/admin/players/{player.id}/suspend", data={"reason": "x" * 5}).status_code
        == 403
    )
    assert db.session.get(User, player.id).status == "active"


def test_modal_form_loads_as_a_fragment_for_htmx_and_as_a_page_without(signed_in, player):
    client, _ = signed_in("manager")
    fragment = client.get(f"/admin/players/{player.id}/suspend?context=row", headers=HX)
    html = fragment.get_data(as_text=True)
    assert "<dialog" in html
    assert "<html" not in html
    assert f'hx-target="#player-row-{player.id}"' in html
    page = client.get(f"/admin/players/{player.id}/suspend").get_data(as_text=True)
    assert "<html" in page
    assert 'hx-target="#player-panel"' in page


def test_suspending_from_the_list_swaps_the_row_and_revokes_sessions(signed_in, player, events):
    client, manager = signed_in("manager")
    response = client.post(
        f"/admin/players/{player.id}/suspend",
        data={"reason": "Chargeback under review", "duration": "7d", "context": "row"},
        headers=HX,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="player-row-{player.id}">')
    assert "badge-suspended" in html
    assert 'id="modal-root" hx-swap-oob="true"' in html
    assert "Suspend: " in html  # the flash, out of band

    user = db.session.get(User, player.id)
    assert user.status == "suspended"
    assert user.status_reason == "Chargeback under review"
    assert user.status_until - utcnow() > timedelta(days=6, hours=23)
    assert user.tokens_valid_after is not None
    assert ("session.logout", {"reason": "suspended"}, f"user:{player.id}") in events
    [row] = _audit("admin.user_suspend", player.id)
    assert row.actor_id == manager.user.id
    assert row.reason == "Chargeback under review"
    assert row.before["status"] == "active"
    assert row.after["status"] == "suspended"


@pytest.mark.parametrize(
    ("action", "start", "end", "audit_action"),
    [
        ("ban", "active", "banned", "admin.user_ban"),
        ("reactivate", "banned", "active", "admin.user_reactivate"),
        ("reactivate", "suspended", "active", "admin.user_reactivate"),
        ("force-logout", "active", "active", "admin.user_logout"),
    ],
)
def test_each_decision_changes_the_account_and_writes_one_audit_row(
    signed_in, player, events, action, start, end, audit_action
):
    player.status = start
    db.session.commit()
    client, admin = signed_in("admin")
    response = client.post(
        f"/admin/players/{player.id}/{action}",
        data={"reason": "Decided after review", "context": "panel"},
        headers=HX,
    )
    assert response.status_code == 200
    assert 'id="player-panel"' in response.get_data(as_text=True)
    assert db.session.get(User, player.id).status == end
    rows = _audit(audit_action, player.id)
    assert len(rows) == 1
    assert rows[0].actor_id == admin.user.id
    assert rows[0].reason == "Decided after review"
    logout_pushed = any(name == "session.logout" for name, _, _ in events)
    assert logout_pushed is (action != "reactivate")


def test_without_javascript_a_decision_redirects_to_the_profile_with_a_flash(signed_in, player):
    client, _ = signed_in("manager")
    response = client.post(
        f"/admin/players/{player.id}/ban", data={"reason": "Multi-accounting", "context": "panel"}
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/admin/players/{player.id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Ban: " in page
    assert "badge-banned" in page


def test_a_decision_without_a_reason_changes_nothing_and_reopens_the_modal(signed_in, player):
    client, _ = signed_in("manager")
    response = client.post(
        f"/admin/players/{player.id}/ban", data={"reason": "", "context": "row"}, headers=HX
    )
    assert response.status_code == 200
    assert response.headers["HX-Retarget"] == "#modal-root"
    assert "Reason is required." in response.get_data(as_text=True)
    assert db.session.get(User, player.id).status == "active"
    assert _audit("admin.user_ban", player.id) == []
    plain = client.post(f"/admin/players/{player.id}/ban", data={"reason": ""})
    assert plain.status_code == 400


def test_a_decision_that_does_not_fit_the_status_is_refused_in_the_modal(signed_in, player):
    client, _ = signed_in("manager")
    response = client.post(
        f"/admin/players/{player.id}/reactivate",
        data={"reason": "Nothing to lift", "context": "panel"},
        headers=HX,
    )
    assert response.headers["HX-Retarget"] == "#modal-root"
    assert "cannot be changed this way" in response.get_data(as_text=True)
    assert _audit("admin.user_reactivate", player.id) == []
    plain = client.post(
        f"/admin/players/{player.id}/reactivate", data={"reason": "Nothing to lift"}
    )
    assert plain.status_code == 409


def test_audit_log_filters_by_action_actor_target_and_date(signed_in, factory, player):
    client, manager = signed_in("manager")
    other = factory.player()
    for target in (player, other):
        client.post(f"/admin/players/{target.id}/force-logout", data={"reason": "Lost phone"})
    client.post(f"/admin/players/{player.id}/suspend", data={"reason": "Fraud check"})

    def entries(query: str) -> str:
        response = client.get(f"/admin/audit?{query}")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    html = entries("action=admin.user_logout")
    assert html.count("<code>admin.user_logout</code>") == 2
    assert "<code>admin.user_suspend</code>" not in html
    assert entries("action=admin.").count("<code>admin.user_") == 3
    assert entries(f"actor={manager.user.username}").count("<code>admin.user_") == 3
    assert entries("actor=nobody-at-all").count("<code>admin.user_") == 0
    html = entries(f"target_type=user&target_id={player.id}")
    assert "<code>admin.user_suspend</code>" in html
    assert html.count("<code>admin.user_logout</code>") == 1
    today = utcnow().date()
    assert entries(f"since={today}&until={today}").count("<code>admin.user_") == 3
    tomorrow = today + timedelta(days=1)
    assert "No audit entries match" in entries(f"since={tomorrow}")
    assert "Fraud check" in entries("action=admin.user_suspend")


def test_admin_turns_maintenance_on_and_the_player_api_answers_503(signed_in, client):
    admin_client, admin = signed_in("admin")
    response = admin_client.post(
        "/admin/settings/platform",
        data={"maintenance_mode": "y", "maintenance_message": "Upgrading the wallet"},
    )
    assert response.status_code == 302
    assert settings_service.maintenance_state() == {
        "enabled": True,
        "message": "Upgrading the wallet",
    }
    api = client.get("/api/probe/conflict")
    assert api.status_code == 503
    assert api.get_json()["code"] == "MAINTENANCE_MODE"
    assert admin_client.get("/admin/").status_code == 200  # staff keep working
    [row] = _audit("settings.update", "maintenance_mode")
    assert row.actor_id == admin.user.id
    assert row.after == {"value": {"enabled": True, "message": "Upgrading the wallet"}}

    admin_client.post("/admin/settings/platform", data={"maintenance_message": ""})
    assert settings_service.maintenance_state()["enabled"] is False
    assert client.get("/api/probe/conflict").status_code == 409


def test_admin_creates_a_manager_who_must_then_enrol_totp(signed_in, new_client):
    admin_client, admin = signed_in("admin")
    response = admin_client.post(
        "/admin/staff/new",
        data={
            "username": "nina",
            "email": "nina@jackpotx.test",
            "role": str(MANAGER),
            "password": PASSWORD,
            "first_name": "Nina",
        },
    )
    assert response.status_code == 302
    nina = db.session.scalar(select(User).where(User.username == "nina"))
    assert nina.role_id == MANAGER
    assert nina.totp_enabled is False
    [row] = _audit("user.create", nina.id)
    assert row.actor_id == admin.user.id
    assert "nina" in admin_client.get("/admin/staff").get_data(as_text=True)

    client = new_client()
    first = client.post("/admin/login", data={"username": "nina", "password": PASSWORD})
    assert first.headers["Location"].endswith("/admin/login/totp-setup")


def test_staff_creation_reports_policy_and_duplicate_problems(signed_in, make_staff):
    admin_client, _ = signed_in("admin")
    weak = admin_client.post(
        "/admin/staff/new",
        data={"username": "weak", "email": "weak@x.test", "role": "5", "password": "short"},
    )
    assert weak.status_code == 400
    assert "at least 12 characters" in weak.get_data(as_text=True)
    common = admin_client.post(
        "/admin/staff/new",
        data={"username": "weak", "email": "weak@x.test", "role": "5", "password": "password1234"},
    )
    assert common.status_code == 400
    assert "too common" in common.get_data(as_text=True)
    taken = make_staff("support")
    dup = admin_client.post(
        "/admin/staff/new",
        data={
            "username": taken.user.username,
            "email": "other@x.test",
            "role": "5",
            "password": PASSWORD,
        },
    )
    assert dup.status_code == 400
    assert "already registered" in dup.get_data(as_text=True)
    bad_role = admin_client.post(
        "/admin/staff/new",
        data={"username": "p1", "email": "p1@x.test", "role": "2", "password": PASSWORD},
    )
    assert bad_role.status_code == 400  # Player is not a staff role choice


def test_dashboard_shows_kpis_and_an_accessible_chart_to_managers(signed_in, crowd):
    client, _ = signed_in("manager")
    html = client.get("/admin/").get_data(as_text=True)
    assert 'data-kpi="players_total"' in html
    assert 'role="img"' in html
    assert "New player registrations, last 14 days" in html
    assert "Show the numbers" in html


def test_dashboard_for_support_lists_their_areas_without_figures(signed_in, crowd):
    client, _ = signed_in("support")
    html = client.get("/admin/").get_data(as_text=True)
    assert 'data-kpi="players_total"' not in html
    assert "These are the areas you can work in" in html


def test_an_admin_address_no_page_serves_answers_the_consoles_error_page(signed_in, client):
    staff_client, _ = signed_in("manager")
    missing = staff_client.get("/admin/no-such-page")
    assert missing.status_code == 404
    assert missing.mimetype == "text/html"
    html = missing.get_data(as_text=True)
    assert "There is nothing here." in html
    assert "Back to the dashboard" in html
    assert 'href="/admin/players"' in html  # inside the console's frame, with its menu
    anonymous = client.get("/admin/no-such-page")
    assert anonymous.status_code == 404
    assert "Go to sign in" in anonymous.get_data(as_text=True)
    # A console address that exists, asked with a method it does not take.
    wrong = staff_client.get("/admin/logout")
    assert wrong.status_code == 405
    assert wrong.mimetype == "text/html"
    assert "does not accept that kind of request" in wrong.get_data(as_text=True)
    # Everywhere else the API's envelope stays.
    api = client.get("/api/no-such-endpoint")
    assert api.status_code == 404
    assert api.get_json()["code"] == "NOT_FOUND"
    assert client.get("/admin-api-typo").get_json()["code"] == "NOT_FOUND"


def test_the_reports_address_opens_the_menus_reports_page(signed_in, client):
    manager, _ = signed_in("manager")
    response = manager.get("/admin/reports")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/reports/financial")
    support, _ = signed_in("support")
    assert support.get("/admin/reports").status_code == 403  # the reports' own permission
    assert "/admin/login" in client.get("/admin/reports").headers["Location"]
