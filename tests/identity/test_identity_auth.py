"""Player identity through HTTP: register, login, refresh rotation, logout, passwords, 2FA."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.core.db import atomic
from app.core.extensions import db
from app.core.models import AuditLog, OutboxEmail
from app.identity import totp
from app.identity.models import LoginEvent, TokenFamily, User
from tests.identity_helpers import PASSWORD, bearer, code, login, tokens


def _register(client, **overrides):
    body = {"username": "newplayer", "email": "new@example.test", "password": "StrongPass123!"}
    body.update(overrides)
    return client.post("/api/auth/register", json=body)


# --- registration -----------------------------------------------------------------------


def test_registration_creates_a_player_with_totp_provisioned_but_not_enabled(client):
    response = _register(client)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["success"] is True
    assert body["data"]["qr_code"].startswith("<svg")
    secret = body["data"]["auth_secret"]
    user = db.session.scalar(sa.select(User).where(User.username == "newplayer"))
    assert user.role_id == 2
    assert user.currency == "EUR"
    assert not user.totp_enabled
    assert totp.secret_of(user) == secret
    assert user.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("Sh0rt!", "at least 12 characters"),
        ("Password1!", "at least 12 characters"),
        ("Welcome1!", "at least 12 characters"),
        ("Qwerty123!", "at least 12 characters"),
        ("password1234", "too common"),
        ("qwertyuiop123", "too common"),
        ("Password1234!", "too common"),
        ("QWERTYUIOP 2024!", "too common"),
        ("x" * 129, "at most 128 characters"),
    ],
)
def test_password_policy_refuses_short_and_common_passwords_naming_the_field(
    client, password, problem
):
    response = _register(client, password=password)
    body = response.get_json()
    assert response.status_code == 400
    assert body["code"] == "VALIDATION_ERROR"
    assert body["errors"][0]["field"] == "password"
    assert problem in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple and a cloudy morning",  # 48 chars, no digit, no capital
        "alllowercaseletters",
        "ALLUPPERCASELETTERS",
        "lange Passphrase für Ümlaute",
        "twelve chars",
    ],
)
def test_long_passwords_need_no_digits_capitals_or_symbols(client, password):
    assert _register(client, password=password).status_code == 201


@pytest.mark.parametrize(
    "clash", [{"username": "NEWPLAYER"}, {"email": "NEW@Example.test", "username": "other"}]
)
def test_username_and_email_are_unique_case_insensitively(client, clash):
    assert _register(client).status_code == 201
    body = {"username": "another", "email": "another@example.test"} | clash
    response = _register(client, **body)
    assert response.status_code == 409
    assert response.get_json()["code"] == "CONFLICT"


def test_ref_code_links_the_referrer_and_an_unknown_code_is_refused(client, factory):
    referrer = factory.staff("agent")
    response = _register(client, ref_code=referrer.referral_code.lower())
    assert response.status_code == 201
    user = db.session.scalar(sa.select(User).where(User.username == "newplayer"))
    assert user.referred_by_id == referrer.id
    assert user.agent_id == referrer.id
    bad = _register(client, username="x_other", email="x@example.test", ref_code="NOPE")
    assert bad.status_code == 400
    assert bad.get_json()["errors"][0]["field"] == "ref_code"


# --- captcha ------------------------------------------------------------------------------


def _solve(app, challenge_id: str) -> str:
    value = app.extensions["redis"].get("jx:captcha:" + challenge_id)
    return value.decode()


def test_captcha_is_an_svg_without_the_answer_in_it(client, app):
    response = client.get("/api/auth/captcha")
    data = response.get_json()["data"]
    assert data["svg"].startswith("<svg")
    assert "data:image/png;base64," in data["svg"]
    assert _solve(app, data["id"]) not in data["svg"]
    assert client.post("/api/auth/captcha").status_code == 200


def test_registration_needs_a_solved_captcha_that_works_only_once(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "CAPTCHA_REQUIRED", True)
    assert _register(client).status_code == 400  # no captcha at all
    challenge = client.get("/api/auth/captcha").get_json()["data"]
    answer = _solve(app, challenge["id"])
    ok = _register(client, captcha_id=challenge["id"], captcha_text=answer.lower())
    assert ok.status_code == 201
    again = _register(
        client,
        username="second",
        email="2@example.test",
        captcha_id=challenge["id"],
        captcha_text=answer,
    )
    assert again.status_code == 400
    assert again.get_json()["errors"][0]["field"] == "captcha_text"


def test_a_misread_captcha_can_be_typed_again_but_three_wrong_answers_burn_it(
    client, app, monkeypatch
):
    monkeypatch.setitem(app.config, "CAPTCHA_REQUIRED", True)
    challenge = client.get("/api/auth/captcha").get_json()["data"]
    answer = _solve(app, challenge["id"])
    assert _register(client, captcha_id=challenge["id"], captcha_text="WRONG").status_code == 400
    retry = _register(client, captcha_id=challenge["id"], captcha_text=answer)
    assert retry.status_code == 201, retry.get_json()  # a person who misread one glyph
    burnt = client.get("/api/auth/captcha").get_json()["data"]
    answer = _solve(app, burnt["id"])
    for _ in range(3):
        wrong = _register(
            client,
            username="third_user",
            email="third@example.test",
            captcha_id=burnt["id"],
            captcha_text="NOPE",
        )
        assert wrong.status_code == 400, wrong.get_json()
        assert wrong.get_json()["errors"][0]["field"] == "captcha_text", wrong.get_json()
    late = _register(
        client,
        username="third_user",
        email="third@example.test",
        captcha_id=burnt["id"],
        captcha_text=answer,
    )
    assert late.status_code == 400
    assert late.get_json()["errors"][0]["field"] == "captcha_text"


def test_the_captcha_alphabet_has_no_look_alikes():
    from app.identity import captcha

    assert not set("01IL5S2Z8BO") & set(captcha.ALPHABET)
    assert captcha._ReadableCaptcha.word_offset_dx == 0  # glyphs never overlap
    assert captcha._ReadableCaptcha.word_space_probability == 1  # no stray spaces


def test_an_expired_captcha_is_refused(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "CAPTCHA_REQUIRED", True)
    monkeypatch.setitem(app.config, "CAPTCHA_TTL", 1)
    challenge = client.get("/api/auth/captcha").get_json()["data"]
    answer = _solve(app, challenge["id"])
    assert 0 < app.extensions["redis"].ttl("jx:captcha:" + challenge["id"]) <= 1
    time.sleep(1.2)
    response = _register(client, captcha_id=challenge["id"], captcha_text=answer)
    assert response.status_code == 400


# --- login --------------------------------------------------------------------------------


def test_login_by_username_or_email_answers_the_design_shape(client, factory):
    player = factory.player()
    for name in (player.username.upper(), player.email):
        response = login(client, name, headers={"X-Device-Fingerprint": "fp-123"})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["success"] is True
        assert body["message"]
        token = body["token"]
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == 15 * 60
        assert token["role"] == {"id": 2, "name": "Player", "description": "A casino player"}
        assert token["access_token"]
        assert token["refresh_token"]
    # The second login reports the first one as the previous login.
    assert body["previous_login_at"] is not None
    events = db.session.scalars(sa.select(LoginEvent).where(LoginEvent.user_id == player.id)).all()
    assert len(events) == 2
    assert all(e.success and e.device_fingerprint == "fp-123" for e in events)
    assert db.session.scalar(sa.select(sa.func.count()).where(AuditLog.action == "auth.login")) == 2


def test_unknown_user_and_wrong_password_are_indistinguishable(client, factory):
    player = factory.player()
    unknown = login(client, "nobody-here")
    wrong = login(client, player.username, "Wrong-Passw0rd!")
    assert unknown.status_code == wrong.status_code == 401
    a, b = unknown.get_json(), wrong.get_json()
    assert (a["code"], a["message"]) == (b["code"], b["message"])
    assert set(a) == set(b)
    failures = db.session.scalars(sa.select(LoginEvent).where(LoginEvent.success.is_(False))).all()
    assert {e.reason for e in failures} == {"bad_credentials"}
    assert (
        db.session.scalar(sa.select(sa.func.count()).where(AuditLog.action == "auth.login_failed"))
        == 2
    )


def test_unknown_user_costs_a_password_hash_like_a_wrong_password(client, factory, monkeypatch):
    # Timing is equalized by doing the same argon2 work on both paths; count that work
    # instead of measuring wall time (which a loaded CI machine makes meaningless).
    from argon2 import PasswordHasher

    player = factory.player()
    login(client, "warm-up")
    calls: list[str] = []
    real_verify = PasswordHasher.verify

    def counting_verify(self, hash_, password):
        calls.append(hash_.split("$")[1])
        return real_verify(self, hash_, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    login(client, "nobody-at-all", "Wrong-Passw0rd!")
    unknown_calls = list(calls)
    calls.clear()
    login(client, player.username, "Wrong-Passw0rd!")
    assert unknown_calls == calls == ["argon2id"]


@pytest.mark.parametrize("status", ["banned", "suspended"])
def test_banned_or_suspended_accounts_are_refused_with_the_reason(client, factory, status):
    player = factory.player()
    with atomic():
        user = db.session.get(User, player.id)
        user.status, user.status_reason = status, "Chargeback fraud"
    response = login(client, player.username)
    body = response.get_json()
    assert response.status_code == 403
    assert "Chargeback fraud" in body["message"]
    assert body["reason"] == "Chargeback fraud"


def test_staff_cannot_use_the_player_login(client, factory):
    support = factory.staff("support")
    assert login(client, support.username).status_code == 403


# --- 2FA ----------------------------------------------------------------------------------


def _enable_2fa(client, player) -> tuple[str, dict]:
    access = tokens(client, player.username)
    headers = bearer(access["access_token"])
    setup = client.post("/api/user/2fa/setup", headers=headers).get_json()["data"]
    response = client.post(
        "/api/user/2fa/enable", json={"auth_code": code(setup["auth_secret"])}, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    return setup["auth_secret"], headers


def test_login_with_2fa_needs_a_code_and_refuses_a_replayed_one(client, factory):
    player = factory.player()
    secret, _ = _enable_2fa(client, player)
    missing = login(client, player.username)
    assert missing.status_code == 401
    assert missing.get_json()["requires_2fa"] is True
    # The code used to enable 2FA is spent; the next step's code is accepted once.
    next_code = code(secret, 1)
    assert login(client, player.username, auth_code=next_code).status_code == 200
    replay = login(client, player.username, auth_code=next_code)
    assert replay.status_code == 401


def test_2fa_status_enable_disable_and_skip(client, factory):
    player = factory.player()
    headers = bearer(tokens(client, player.username)["access_token"])
    status = client.get("/api/user/2fa/status", headers=headers).get_json()["data"]
    assert status["is_enabled"] is False
    assert status["can_skip"] is True
    skip_bad = client.post("/api/user/2fa/skip", json={"password": "nope"}, headers=headers)
    assert skip_bad.status_code == 400
    assert (
        client.post("/api/user/2fa/skip", json={"password": PASSWORD}, headers=headers).status_code
        == 200
    )
    assert client.get("/api/user/2fa/status", headers=headers).get_json()["data"]["skipped"]
    _secret, headers = _enable_2fa(client, player)
    wrong = client.post("/api/user/2fa/disable", json={"password": "bad"}, headers=headers)
    assert wrong.status_code == 400
    off = client.post("/api/user/2fa/disable", json={"password": PASSWORD}, headers=headers)
    assert off.status_code == 200
    assert off.get_json()["data"]["is_enabled"] is False
    assert login(client, player.username).status_code == 200


def test_enable_refuses_a_wrong_code(client, factory):
    player = factory.player()
    headers = bearer(tokens(client, player.username)["access_token"])
    client.post("/api/user/2fa/setup", headers=headers)
    response = client.post("/api/user/2fa/enable", json={"auth_code": "000000"}, headers=headers)
    assert response.status_code == 400


# --- refresh, logout ----------------------------------------------------------------------


def test_refresh_rotates_and_a_reused_token_kills_the_whole_family(client, factory):
    player = factory.player()
    first = tokens(client, player.username)
    rotated = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.get_json()["token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/auth/me", headers=bearer(second["access_token"])).status_code == 200
    reuse = client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    # The attacker's replay revoked everything of that login, the legitimate pair included.
    assert (
        client.post(
            "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
        ).status_code
        == 401
    )
    assert client.get("/api/auth/me", headers=bearer(second["access_token"])).status_code == 401
    assert (
        db.session.scalar(sa.select(sa.func.count()).where(AuditLog.action == "auth.refresh_reuse"))
        == 1
    )


def test_an_access_token_is_not_a_refresh_token_and_vice_versa(client, factory):
    player = factory.player()
    pair = tokens(client, player.username)
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": pair["access_token"]}).status_code
        == 401
    )
    assert client.get("/api/auth/me", headers=bearer(pair["refresh_token"])).status_code == 401


def test_refresh_never_extends_the_session_past_its_absolute_end(client, factory):
    player = factory.player()
    pair = tokens(client, player.username)
    from app.core.base import utcnow

    with atomic():
        family = db.session.scalars(
            sa.select(TokenFamily).where(TokenFamily.user_id == player.id)
        ).one()
        family.expires_at = utcnow()
    response = client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401


def test_logout_kills_access_and_refresh_at_once(client, factory):
    player = factory.player()
    pair = tokens(client, player.username)
    other_device = tokens(client, player.username)
    headers = bearer(pair["access_token"])
    assert client.post("/api/auth/logout", headers=headers).status_code == 200
    assert client.get("/api/auth/me", headers=headers).status_code == 401
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code
        == 401
    )
    # Another session of the same player is untouched.
    assert (
        client.get("/api/auth/me", headers=bearer(other_device["access_token"])).status_code == 200
    )


def test_me_answers_the_account_and_its_permissions(client, factory):
    player = factory.player()
    me = client.get("/api/auth/me", headers=bearer(tokens(client, player.username)["access_token"]))
    data = me.get_json()["data"]
    assert data["id"] == player.id
    assert data["role"]["name"] == "Player"
    assert data["permissions"] == []
    assert "password_hash" not in data
    assert "totp_secret_enc" not in data


@pytest.mark.usefixtures("committed_db")
def test_two_simultaneous_refreshes_exactly_one_wins(app, committed_db, requires_postgres):
    from tests.conftest import Factory

    player = Factory().player()
    client = app.test_client()
    refresh_token = tokens(client, player.username)["refresh_token"]
    barrier = threading.Barrier(6)
    results: list[tuple[int, dict]] = []

    def race():
        local = app.test_client()
        barrier.wait()
        response = local.post("/api/auth/refresh", json={"refresh_token": refresh_token})
        results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [body for status, body in results if status == 200]
    assert len(winners) == 1
    losers = sorted(status for status, _ in results if status != 200)
    # A loser that raced the winner gets 409; one that arrived after the winner committed
    # presented a spent token, which is reuse (401) and ends the session.
    assert set(losers) <= {401, 409}
    with app.app_context():
        family = db.session.scalars(sa.select(TokenFamily)).one()
        reuse_seen = 401 in losers
        assert (family.revoked_reason == "refresh_reuse") is reuse_seen
        db.session.remove()
    follow_up = client.post(
        "/api/auth/refresh", json={"refresh_token": winners[0]["token"]["refresh_token"]}
    )
    assert follow_up.status_code == (401 if reuse_seen else 200)


# --- passwords ----------------------------------------------------------------------------


def test_password_change_keeps_this_session_and_ends_the_others(client, factory):
    player = factory.player()
    mine = tokens(client, player.username)
    other = tokens(client, player.username)
    response = client.put(
        "/api/user/password/change",
        json={
            "current_password": PASSWORD,
            "new_password": "N3w-Passw0rd!",
            "confirm_password": "N3w-Passw0rd!",
        },
        headers=bearer(mine["access_token"]),
    )
    assert response.status_code == 200
    assert response.get_json()["data"]["sessions_revoked"] == 1
    assert client.get("/api/auth/me", headers=bearer(mine["access_token"])).status_code == 200
    assert client.get("/api/auth/me", headers=bearer(other["access_token"])).status_code == 401
    assert login(client, player.username).status_code == 401
    assert login(client, player.username, "N3w-Passw0rd!").status_code == 200


def test_password_change_needs_the_current_password(client, factory):
    player = factory.player()
    response = client.put(
        "/api/user/password/change",
        json={"current_password": "wrong", "new_password": "N3w-Passw0rd!"},
        headers=bearer(tokens(client, player.username)["access_token"]),
    )
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "current_password"


def _mailed_token(app, user_id: int) -> str:
    mail = db.session.scalars(
        sa.select(OutboxEmail).where(OutboxEmail.user_id == user_id).order_by(OutboxEmail.id.desc())
    ).first()
    assert mail.status == "sent"
    eml = Path(app.config["MAIL_DIR"]) / f"{mail.id:08d}.eml"
    assert eml.exists()
    return mail.body.split("reset-password: ")[1].split()[0]


def test_forgot_password_mails_a_one_time_token_through_the_outbox(client, factory, app):
    player = factory.player()
    session = tokens(client, player.username)
    unknown = client.post("/api/auth/forgot-password", json={"email": "nobody@example.test"})
    known = client.post("/api/auth/forgot-password", json={"email": player.email.upper()})
    assert unknown.status_code == known.status_code == 200
    assert unknown.get_json()["message"] == known.get_json()["message"]
    token = _mailed_token(app, player.id)
    body = {"token": token, "new_password": "Res3t-Passw0rd!"}
    assert client.post("/api/auth/reset-password", json=body).status_code == 200
    assert client.post("/api/auth/reset-password", json=body).status_code == 400  # one use
    assert client.get("/api/auth/me", headers=bearer(session["access_token"])).status_code == 401
    assert login(client, player.username, "Res3t-Passw0rd!").status_code == 200


def test_an_expired_reset_token_is_refused(client, factory, app, monkeypatch):
    player = factory.player()
    monkeypatch.setitem(app.config, "PASSWORD_RESET_TTL", -1)
    client.post("/api/auth/forgot-password", json={"email": player.email})
    token = _mailed_token(app, player.id)
    response = client.post(
        "/api/auth/reset-password", json={"token": token, "new_password": "Res3t-Passw0rd!"}
    )
    assert response.status_code == 400


# --- profile and activity -----------------------------------------------------------------


def test_profile_update_accepts_the_editable_fields(client, factory):
    player = factory.player()
    headers = bearer(tokens(client, player.username)["access_token"])
    body = {
        "first_name": "John",
        "last_name": "Doe",
        "language": "en",
        "phone_number": "+356 2123 4567",
        "country": "mt",
    }
    for path in ("/api/user/profile", "/api/user/profile/update"):
        response = client.put(path, json=body, headers=headers)
        assert response.status_code == 200, response.get_json()
    data = client.get("/api/user/profile", headers=headers).get_json()["data"]
    assert (data["first_name"], data["phone_number"], data["country"]) == (
        "John",
        "+356 2123 4567",
        "MT",
    )


@pytest.mark.parametrize(
    "field", ["balance", "role", "role_id", "status", "kyc_status", "kyc", "email", "currency"]
)
def test_mass_assignment_of_protected_fields_is_refused(client, factory, field):
    player = factory.player()
    headers = bearer(tokens(client, player.username)["access_token"])
    response = client.put(
        "/api/user/profile", json={"first_name": "A", field: "x"}, headers=headers
    )
    body = response.get_json()
    assert response.status_code == 400
    assert body["code"] == "VALIDATION_ERROR"
    assert [e["field"] for e in body["errors"]] == [field]
    assert db.session.get(User, player.id).first_name is None


def test_underage_date_of_birth_is_refused(client, factory):
    player = factory.player()
    headers = bearer(tokens(client, player.username)["access_token"])
    response = client.put(
        "/api/user/profile", json={"date_of_birth": "2020-01-01"}, headers=headers
    )
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "date_of_birth"


def test_activity_lists_logins_and_the_summary_counts_them(client, factory):
    player = factory.player()
    login(client, player.username, "Wrong-1!aa")
    pair = tokens(client, player.username, headers={"X-Device-Fingerprint": "dev-1"})
    headers = bearer(pair["access_token"])
    activity = client.get("/api/user/activity?limit=10", headers=headers).get_json()
    assert activity["meta"] == {"page": 1, "limit": 10, "total": 2}
    assert [row["success"] for row in activity["data"]] == [True, False]
    summary = client.get("/api/user/activity-summary", headers=headers).get_json()["data"]
    assert summary["login_count"] == 1
    assert summary["failed_login_count"] == 1
    assert summary["unique_devices"] == 1
    assert summary["active_sessions"] == 1


def test_registration_opens_an_empty_wallet_in_the_default_currency(client, app):
    from app.wallet.models import Wallet

    response = client.post(
        "/api/auth/register",
        json={"username": "walletowner", "email": "wo@example.test", "password": PASSWORD},
    )
    assert response.status_code == 201
    user_id = db.session.scalar(sa.select(User.id).where(User.username == "walletowner"))
    wallet = db.session.scalars(sa.select(Wallet).where(Wallet.user_id == user_id)).one()
    assert (wallet.currency, wallet.balance, wallet.bonus_balance) == (
        app.config["DEFAULT_CURRENCY"],
        0,
        0,
    )
