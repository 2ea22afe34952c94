"""Signing in to the back office: password + TOTP, enrolment, lockout, session handling."""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select

from app.core.base import utcnow
from app.core.extensions import db, redis_store
from app.core.models import AuditLog
from app.identity.models import User
from tests.console.conftest import PASSWORD, login


def _audit(action: str, target_id: int | None = None) -> list[AuditLog]:
    query = select(AuditLog).where(AuditLog.action == action)
    if target_id is not None:
        query = query.where(AuditLog.target_id == str(target_id))
    return list(db.session.scalars(query.order_by(AuditLog.id)))


def test_login_page_renders_a_form_with_csrf_and_no_inline_script(client, csrf_enforced):
    response = client.get("/admin/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'name="csrf_token"' in html
    assert 'autocomplete="one-time-code"' in html
    assert "<script>" not in html
    assert "onclick" not in html
    assert "/static/vendor/htmx.min.js" in html


def test_manager_signs_in_with_password_and_totp_and_lands_on_dashboard(client, make_staff):
    manager = make_staff("manager")
    response = login(client, manager)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/")
    page = client.get("/admin/")
    assert page.status_code == 200
    assert manager.user.username in page.get_data(as_text=True)
    rows = _audit("console.login", manager.user.id)
    assert len(rows) == 1
    assert rows[0].actor_id == manager.user.id
    assert db.session.get(User, manager.user.id).last_login_at is not None


@pytest.mark.parametrize("role", ["admin", "manager"])
def test_admin_and_manager_without_a_code_are_refused(client, make_staff, role):
    staff = make_staff(role)
    response = login(client, staff, code="")
    assert response.status_code == 401
    assert "Invalid username, password or authentication code" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    assert _audit("console.login.failed", staff.user.id)[-1].after["reason"] == "bad_totp"


def test_a_replayed_totp_code_is_refused_at_login(client, make_staff):
    manager = make_staff("manager")
    code = manager.code()
    assert login(client, manager, code=code).status_code == 302
    client.post("/admin/logout")
    replay = login(client, manager, code=code)
    assert replay.status_code == 401
    assert client.get("/admin/").status_code == 302
    assert _audit("console.login.failed", manager.user.id)[-1].after["reason"] == "bad_totp"


def test_wrong_password_gives_the_same_answer_as_an_unknown_user(client, make_staff):
    support = make_staff("support")
    wrong = client.post(
        "/admin/login", data={"username": support.user.username, "password": "Nope-123!"}
    )
    unknown = client.post("/admin/login", data={"username": "ghost", "password": "Nope-123!"})
    assert wrong.status_code == unknown.status_code == 401
    message = "Invalid username, password or authentication code"
    assert message in wrong.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)
    reasons = [row.after["reason"] for row in _audit("console.login.failed")]
    assert reasons == ["bad_password", "unknown_login"]


@pytest.mark.parametrize("role", ["support", "agent"])
def test_support_and_agent_without_totp_are_forced_through_enrolment(client, make_staff, role):
    """Issue 21: every staff role needs TOTP; a password alone opens no console page."""
    staff = make_staff(role, with_totp=False)
    response = login(client, staff, code="")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/login/totp-setup")
    for url in ("/admin/", "/admin/players", "/admin/kyc"):
        assert client.get(url).status_code == 302  # no session before enrolment
    page = client.get("/admin/login/totp-setup").get_data(as_text=True)
    from app.identity.totp import secret_of

    secret = secret_of(db.session.get(User, staff.user.id))
    assert secret in page
    assert "<svg" in page
    done = client.post("/admin/login/totp-setup", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200  # the recovery codes, shown once, then on
    assert "Your recovery codes" in done.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200


@pytest.mark.parametrize("role", ["support", "agent"])
def test_support_and_agent_must_give_their_code(client, make_staff, role):
    staff = make_staff(role)
    assert login(client, staff, code="").status_code == 401
    assert login(client, staff).status_code == 302


def test_a_console_session_of_staff_without_totp_ends(client, make_staff):
    """A session opened before TOTP was mandatory for the role (an upgrade) does not survive."""
    support = make_staff("support")
    assert login(client, support).status_code == 302
    assert client.get("/admin/").status_code == 200
    user = db.session.get(User, support.user.id)
    user.totp_enabled = False
    db.session.commit()
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]


def test_a_player_can_never_enter_even_with_the_right_password(client, factory):
    player = factory.player(password=PASSWORD)
    response = client.post("/admin/login", data={"username": player.username, "password": PASSWORD})
    assert response.status_code == 401
    assert client.get("/admin/").status_code == 302
    row = _audit("console.login.failed", player.id)[-1]
    assert row.after["reason"] == "not_staff"
    # Probing the console must not lock the player out of the casino.
    assert db.session.get(User, player.id).failed_logins == 0


def test_a_player_id_planted_in_the_session_is_ignored(client, factory):
    player = factory.player()
    with client.session_transaction() as session:
        session["_user_id"] = str(player.id)
        session["console_sid"] = "forged"
    response = client.get("/admin/players")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]


def test_suspended_staff_cannot_sign_in(client, make_staff):
    support = make_staff("support")
    support.user.status = "suspended"
    db.session.commit()
    assert login(client, support).status_code == 401
    assert _audit("console.login.failed", support.user.id)[-1].after["reason"] == "status_suspended"


def test_repeated_failures_lock_the_account_even_for_the_right_password(app, client, make_staff):
    support = make_staff("support")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/admin/login", data={"username": support.user.username, "password": "Bad-1!x"})
    user = db.session.get(User, support.user.id)
    assert user.locked_until is not None
    assert user.locked_until > utcnow()
    assert len(_audit("console.login.locked", support.user.id)) == 1
    assert login(client, support).status_code == 401
    assert _audit("console.login.failed", support.user.id)[-1].after["reason"] == "locked"


def test_login_posts_are_rate_limited(app, client):
    limit = int(app.config["RATE_LIMIT_AUTH"].split()[0])
    for _ in range(limit):
        client.post("/admin/login", data={"username": "ghost", "password": "x"})
    response = client.post("/admin/login", data={"username": "ghost", "password": "x"})
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)


def test_manager_without_totp_is_guided_through_enrolment_before_any_session(client, make_staff):
    manager = make_staff("manager", with_totp=False)
    response = login(client, manager)
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/login/totp-setup")
    assert client.get("/admin/").status_code == 302  # no session yet

    page = client.get("/admin/login/totp-setup")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<svg" in html
    assert "Set up two-factor authentication" in html
    user = db.session.get(User, manager.user.id)
    assert user.totp_secret_enc
    assert not user.totp_enabled
    from app.identity.totp import secret_of

    secret = secret_of(user)
    assert secret in html  # the key for manual entry
    assert client.get("/admin/login/totp-setup").get_data(as_text=True).count(secret) == 1

    wrong = client.post("/admin/login/totp-setup", data={"code": "000000"})
    assert wrong.status_code == 400
    done = client.post("/admin/login/totp-setup", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    assert 'href="/admin/"' in done.get_data(as_text=True)  # continue where the sign-in led
    assert client.get("/admin/").status_code == 200
    assert db.session.get(User, manager.user.id).totp_enabled
    assert len(_audit("staff.totp.enrol", manager.user.id)) == 1


def test_enrolment_page_needs_a_password_checked_first(client):
    response = client.get("/admin/login/totp-setup")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/login")


def test_sign_in_issues_a_fresh_session_and_throws_away_the_old_content(client, make_staff):
    support = make_staff("support")
    with client.session_transaction() as session:
        session["planted_by_attacker"] = "1"
    login(client, support)
    with client.session_transaction() as session:
        assert "planted_by_attacker" not in session
        assert session["console_sid"]
        assert session.permanent


def test_a_copied_session_cookie_is_dead_after_logout(app, client, new_client, make_staff):
    support = make_staff("support")
    login(client, support)
    stolen = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    assert client.post("/admin/logout").status_code == 302
    assert len(_audit("console.logout", support.user.id)) == 1

    thief = new_client()
    thief.set_cookie(app.config["SESSION_COOKIE_NAME"], stolen, domain="localhost")
    response = thief.get("/admin/players")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]


def test_the_server_side_session_expires_after_the_idle_timeout(app, client, make_staff):
    support = make_staff("support")
    login(client, support)
    with client.session_transaction() as session:
        sid = session["console_sid"]
    key = f"jx:console:session:{sid}"
    ttl = redis_store.client().ttl(key)
    assert 0 < ttl <= int(app.permanent_session_lifetime.total_seconds())
    redis_store.client().delete(key)  # what the idle expiry does
    response = client.get("/admin/")
    assert response.status_code == 302
    assert client.get(response.headers["Location"]).status_code == 200


def test_an_active_session_ends_at_the_absolute_lifetime(app, client, make_staff):
    """Issue 21: activity slides the idle timeout, never past CONSOLE_SESSION_MAX_HOURS."""
    import time

    support = make_staff("support")
    login(client, support)
    assert client.get("/admin/").status_code == 200
    with client.session_transaction() as session:
        sid = session["console_sid"]
        started = session["console_started_at"]
    key = f"jx:console:session:{sid}"
    max_age = app.config["CONSOLE_SESSION_MAX_HOURS"] * 3600
    # Sliding never pushes the server-side expiry past the absolute end.
    assert 0 < redis_store.client().ttl(key) <= max_age
    # The session started just over the maximum ago, and was used a second ago.
    old = time.time() - max_age - 1
    redis_store.client().set(key, f"{support.user.id}:{old:.3f}", ex=600)
    with client.session_transaction() as session:
        session["console_started_at"] = old
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]
    assert redis_store.client().get(key) is None
    assert started > old


def test_the_server_side_start_time_is_enforced_even_with_a_fresh_cookie(app, client, make_staff):
    """The cookie's start time is signed; the registry's own start time holds regardless."""
    import time

    support = make_staff("support")
    login(client, support)
    with client.session_transaction() as session:
        sid = session["console_sid"]
    old = time.time() - app.config["CONSOLE_SESSION_MAX_HOURS"] * 3600 - 1
    redis_store.client().set(f"jx:console:session:{sid}", f"{support.user.id}:{old:.3f}", ex=600)
    assert client.get("/admin/").status_code == 302


def test_the_absolute_lifetime_is_a_setting_checked_in_production():
    from app.core.config import ConfigError, load_config
    from tests.payments.test_sandbox_in_production import PRODUCTION

    assert load_config({})["CONSOLE_SESSION_MAX_HOURS"] == 12
    assert load_config({"CONSOLE_SESSION_MAX_HOURS": "8"})["CONSOLE_SESSION_MAX_HOURS"] == 8
    assert load_config(PRODUCTION)["CONSOLE_SESSION_MAX_HOURS"] == 12
    with pytest.raises(ConfigError, match="CONSOLE_SESSION_MAX_HOURS"):
        load_config({**PRODUCTION, "CONSOLE_SESSION_MAX_HOURS": "72"})


def test_revoking_a_staff_members_tokens_also_ends_their_console_session(client, make_staff):
    support = make_staff("support")
    login(client, support)
    assert client.get("/admin/").status_code == 200
    user = db.session.get(User, support.user.id)
    user.tokens_valid_after = utcnow()
    db.session.commit()
    assert client.get("/admin/").status_code == 302


def test_next_parameter_only_redirects_inside_the_console(client, make_staff):
    for target, expected in (
        ("/admin/players", "/admin/players"),
        ("https://evil.example/admin", "/admin/"),
        ("//evil.example/admin", "/admin/"),
    ):
        support = make_staff("support")  # a code is accepted once per step: one each
        client.post("/admin/logout")
        response = client.post(
            "/admin/login",
            data={
                "username": support.user.username,
                "password": PASSWORD,
                "code": support.code(),
                "next": target,
            },
        )
        assert response.status_code == 302
        assert response.headers["Location"] == expected


def test_anonymous_visit_redirects_to_login_with_next(client):
    response = client.get("/admin/players?q=ada")
    assert response.status_code == 302
    assert "/admin/login?next=" in response.headers["Location"]


def test_a_console_lock_lasts_at_least_30_minutes(app, client, make_staff):
    """PCI DSS 8.3.4: locked out for at least 30 minutes (was 15)."""
    from datetime import timedelta

    support = make_staff("support")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.post("/admin/login", data={"username": support.user.username, "password": "Bad-1!x"})
    user = db.session.get(User, support.user.id)
    assert user.locked_until - utcnow() > timedelta(minutes=29)
    assert app.config["LOGIN_LOCKOUT_MINUTES"] == 30


def test_console_failures_older_than_the_window_are_forgotten(app, client, make_staff):
    from datetime import timedelta

    from app.core.db import atomic

    assert app.config["LOGIN_FAILURE_WINDOW_MINUTES"] == 30
    support = make_staff("support")
    with atomic():
        user = db.session.get(User, support.user.id)
        user.failed_logins = app.config["LOGIN_MAX_FAILURES"] - 1
        user.failed_logins_since = utcnow() - timedelta(minutes=31)
    client.post("/admin/login", data={"username": support.user.username, "password": "Bad-1!x"})
    db.session.expire_all()
    user = db.session.get(User, support.user.id)
    assert user.locked_until is None
    assert user.failed_logins == 1
    assert login(client, support).status_code == 302


def test_lockout_settings_come_from_the_environment_and_production_keeps_30_minutes():
    from app.core.config import ConfigError, load_config
    from tests.prodenv import PRODUCTION_ENV

    production = {**PRODUCTION_ENV, "SANDBOX_GATEWAY_ENABLED": "0"}
    cfg = load_config({"LOGIN_LOCKOUT_MINUTES": "45", "LOGIN_FAILURE_WINDOW_MINUTES": "60"})
    assert (cfg["LOGIN_LOCKOUT_MINUTES"], cfg["LOGIN_FAILURE_WINDOW_MINUTES"]) == (45, 60)
    with pytest.raises(ConfigError, match="LOGIN_LOCKOUT_MINUTES must be at least 30"):
        load_config({**production, "LOGIN_LOCKOUT_MINUTES": "15"})
