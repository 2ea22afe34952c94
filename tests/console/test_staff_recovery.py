"""Staff TOTP recovery (issue 21): one-time recovery codes (hashed at rest, shown once, each
usable once, audited) at the console and the staff API, and an Admin's audited "reset 2FA"
for another staff member (never their own) that forces enrolment at the next sign-in."""

from __future__ import annotations

import pyotp
from sqlalchemy import select

from app.core.extensions import db
from app.core.models import AuditLog
from app.identity import recovery
from app.identity.models import StaffRecoveryCode, User
from app.identity.totp import secret_of
from tests.console.conftest import login
from tests.identity_helpers import PASSWORD as PASSWORD_API
from tests.identity_helpers import bearer


def _audit(action: str, target_id: int) -> list[AuditLog]:
    return list(
        db.session.scalars(
            select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == str(target_id))
        )
    )


def _enrol_at_console(client, staff) -> list[str]:
    assert login(client, staff, code="").headers["Location"].endswith("/admin/login/totp-setup")
    client.get("/admin/login/totp-setup")
    secret = secret_of(db.session.get(User, staff.user.id))
    staff.secret = secret
    page = client.post("/admin/login/totp-setup", data={"code": pyotp.TOTP(secret).now()})
    assert page.status_code == 200
    import re

    return re.findall(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>", page.get_data(as_text=True))


def _sign_out(client):
    client.post("/admin/logout")


def test_enrolment_shows_ten_codes_once_and_stores_only_their_digests(new_client, make_staff):
    client = new_client()
    staff = make_staff("support", with_totp=False)
    codes = _enrol_at_console(client, staff)
    assert len(codes) == len(set(codes)) == recovery.COUNT
    rows = db.session.scalars(
        select(StaffRecoveryCode).where(StaffRecoveryCode.user_id == staff.user.id)
    ).all()
    assert len(rows) == recovery.COUNT
    stored = {r.code_hash for r in rows}
    for code in codes:
        assert code not in stored
        assert code.replace("-", "") not in stored
        assert all(len(h) == 64 for h in stored)
    assert len(_audit("staff.recovery_codes.generated", staff.user.id)) == 1
    # Shown once: nothing in the console shows them again.
    page = client.get("/admin/account/recovery-codes").get_data(as_text=True)
    assert codes[0] not in page
    assert ">10<" in page


def test_a_recovery_code_signs_in_once_at_the_console(new_client, make_staff):
    client = new_client()
    staff = make_staff("manager", with_totp=False)
    codes = _enrol_at_console(client, staff)
    _sign_out(client)
    used = login(new_client(), staff, code=codes[3].lower().replace("-", " "))
    assert used.status_code == 302
    assert used.headers["Location"].endswith("/admin/")
    again = login(new_client(), staff, code=codes[3])
    assert again.status_code == 401
    assert recovery.remaining(db.session.get(User, staff.user.id)) == recovery.COUNT - 1
    [row] = _audit("staff.recovery_code.used", staff.user.id)
    assert row.after["remaining"] == recovery.COUNT - 1


def test_guessed_recovery_codes_count_towards_the_lockout(app, new_client, make_staff):
    staff = make_staff("admin")
    codes = recovery.generate(db.session.get(User, staff.user.id))
    db.session.commit()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        assert login(new_client(), staff, code="ACDEF-GHJKM").status_code == 401
    # Locked: even a real code is refused now.
    assert login(new_client(), staff, code=codes[0]).status_code == 401
    assert db.session.get(User, staff.user.id).locked_until is not None


def test_regenerating_needs_a_current_code_and_voids_the_old_codes(new_client, make_staff):
    client = new_client()
    staff = make_staff("agent", with_totp=False)
    old = _enrol_at_console(client, staff)
    refused = client.post("/admin/account/recovery-codes", data={"code": "000000"})
    assert refused.status_code == 400
    import time

    # The enrolment burnt this time step's code: use the next step's.
    step = int(time.time()) // 30 + 1
    code = pyotp.TOTP(staff.secret).at(step * 30)
    fresh = client.post("/admin/account/recovery-codes", data={"code": code})
    assert fresh.status_code == 200
    html = fresh.get_data(as_text=True)
    assert "Your recovery codes" in html
    _sign_out(client)
    assert login(new_client(), staff, code=old[0]).status_code == 401
    import re

    new = re.findall(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>", html)
    assert login(new_client(), staff, code=new[0]).status_code == 302


def test_staff_api_enrolment_answers_codes_and_a_code_replaces_the_totp(client, factory):
    manager = factory.staff("manager")  # no TOTP yet
    path = "/api/admin/auth/login"
    first = client.post(path, json={"username": manager.username, "password": PASSWORD_API})
    assert first.status_code == 403
    secret = first.get_json()["auth_secret"]
    enrolled = client.post(
        path,
        json={
            "username": manager.username,
            "password": PASSWORD_API,
            "auth_code": pyotp.TOTP(secret).now(),
        },
    )
    assert enrolled.status_code == 200, enrolled.get_json()
    codes = enrolled.get_json()["recovery_codes"]
    assert len(codes) == recovery.COUNT
    # A later login's answer carries none.
    by_code = client.post(
        path, json={"username": manager.username, "password": PASSWORD_API, "auth_code": codes[0]}
    )
    assert by_code.status_code == 200, by_code.get_json()
    assert "recovery_codes" not in by_code.get_json()
    replay = client.post(
        path, json={"username": manager.username, "password": PASSWORD_API, "auth_code": codes[0]}
    )
    assert replay.status_code == 401
    # New codes through the API need a current TOTP code.
    token = by_code.get_json()["token"]["access_token"]
    wrong = client.post(
        "/api/admin/auth/recovery-codes", headers=bearer(token), json={"auth_code": "123456"}
    )
    assert wrong.status_code == 401
    import time

    step = int(time.time()) // 30 + 1
    right = client.post(
        "/api/admin/auth/recovery-codes",
        headers=bearer(token),
        json={"auth_code": pyotp.TOTP(secret).at(step * 30)},
    )
    assert right.status_code == 200, right.get_json()
    assert len(right.get_json()["data"]["recovery_codes"]) == recovery.COUNT


def test_a_player_cannot_use_recovery_codes(client, factory):
    player = factory.player(totp_secret=pyotp.random_base32())
    user = db.session.get(User, player.id)
    codes = recovery.generate(user)  # even if some existed, the player login ignores them
    db.session.flush()
    response = client.post(
        "/api/auth/login",
        json={"username": player.username, "password": PASSWORD_API, "auth_code": codes[0]},
    )
    assert response.status_code == 401


# --- the Admin's reset ---------------------------------------------------------------------


def test_an_admin_resets_another_staff_members_2fa_and_they_enrol_again(
    new_client, signed_in, make_staff
):
    admin_client, admin = signed_in("admin")
    support = make_staff("support")
    support_client = new_client()
    assert login(support_client, support).status_code == 302
    user = db.session.get(User, support.user.id)
    recovery.generate(user)
    db.session.commit()

    page = admin_client.get("/admin/staff").get_data(as_text=True)
    assert f"/admin/staff/{support.user.id}/reset-2fa" in page
    assert f"/admin/staff/{admin.user.id}/reset-2fa" not in page  # never your own
    confirm = admin_client.get(f"/admin/staff/{support.user.id}/reset-2fa")
    assert confirm.status_code == 200
    done = admin_client.post(f"/admin/staff/{support.user.id}/reset-2fa", data={})
    assert done.status_code == 302

    db.session.expire_all()
    user = db.session.get(User, support.user.id)
    assert user.totp_enabled is False
    assert user.totp_secret_enc is None
    assert recovery.remaining(user) == 0
    [row] = _audit("staff.totp.reset", support.user.id)
    assert row.actor_id == admin.user.id
    # Their open session ended; their next sign-in enrols a new authenticator.
    assert support_client.get("/admin/").status_code == 302
    again = login(new_client(), support, code="")
    assert again.headers["Location"].endswith("/admin/login/totp-setup")


def test_an_admin_cannot_reset_their_own_2fa_and_a_manager_cannot_reset_anyone(
    signed_in, make_staff, client, factory, token_for
):
    admin_client, admin = signed_in("admin")
    own = admin_client.post(f"/admin/staff/{admin.user.id}/reset-2fa", data={})
    assert own.status_code == 409
    assert "your own" in own.get_data(as_text=True)
    assert db.session.get(User, admin.user.id).totp_enabled is True

    manager_client, _manager = signed_in("manager")
    other = make_staff("support")
    assert manager_client.post(f"/admin/staff/{other.user.id}/reset-2fa").status_code == 403

    # The staff API: the same rules.
    api_admin = factory.staff("admin")
    headers = token_for(api_admin)
    assert (
        client.post(f"/api/admin/users/{api_admin.id}/reset-2fa", headers=headers).status_code
        == 403
    )
    ok = client.post(f"/api/admin/users/{other.user.id}/reset-2fa", headers=headers)
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["data"]["user"]["is_2fa_enabled"] is False
    player = factory.player()
    assert (
        client.post(f"/api/admin/users/{player.id}/reset-2fa", headers=headers).status_code == 404
    )
    target = make_staff("agent")
    for actor in (*(factory.staff(r) for r in ("manager", "support", "agent")), factory.player()):
        refused = client.post(
            f"/api/admin/users/{target.user.id}/reset-2fa", headers=token_for(actor)
        )
        assert refused.status_code == 403
        assert refused.get_json()["code"] == "ACCESS_DENIED"
    assert db.session.get(User, target.user.id).totp_enabled is True
    # Recovery codes are for staff only.
    player_codes = client.post(
        "/api/admin/auth/recovery-codes",
        headers=token_for(player),
        json={"auth_code": "123456"},
    )
    assert player_codes.status_code == 403
