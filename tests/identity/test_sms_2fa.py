"""SMS as a second factor for players (issue 17): enabled with a verified primary phone, the
login answers ``requires_2fa`` with ``method: sms`` and texts a code; staff keep TOTP only."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from freezegun import freeze_time

from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.identity import otp
from app.identity.models import LoginEvent, OneTimeCode, User, UserPhone
from tests.identity.identity_helpers_otp import set_mode
from tests.identity.sms_helpers import last_code, messages_to
from tests.identity_helpers import ADMIN_SECRET, PASSWORD, bearer, code, login

PHONE = "+35699123456"


def _with_phone(factory, **kw) -> User:
    player = factory.player(**kw)
    with atomic():
        db.session.add(
            UserPhone(user_id=player.id, number=PHONE, is_primary=True, verified_at=utcnow())
        )
    return player


def _enable(client, token_for, player):
    return client.post(
        "/api/user/2fa/sms/enable", json={"password": PASSWORD}, headers=token_for(player)
    )


def test_enabling_needs_the_password_and_a_verified_primary_phone(client, factory, token_for):
    bare = factory.player()
    assert _enable(client, token_for, bare).status_code == 409
    player = _with_phone(factory)
    wrong = client.post(
        "/api/user/2fa/sms/enable", json={"password": "nope"}, headers=token_for(player)
    )
    assert wrong.status_code == 400
    assert _enable(client, token_for, player).status_code == 200
    status = client.get("/api/user/2fa/status", headers=token_for(player)).json["data"]
    assert status["sms_enabled"] is True
    assert status["method"] == "sms"
    # The number that receives the codes cannot be deleted while SMS 2FA is on.
    phone_id = db.session.scalar(sa.select(UserPhone.id).where(UserPhone.user_id == player.id))
    assert (
        client.delete(f"/api/user/phones/{phone_id}", headers=token_for(player)).status_code == 409
    )


def test_login_texts_a_code_and_only_that_code_signs_in_once(client, factory, token_for):
    player = _with_phone(factory)
    _enable(client, token_for, player)
    first = login(client, player.username)
    assert first.status_code == 401
    assert first.json["requires_2fa"] is True
    assert first.json["method"] == "sms"
    assert first.json["phone"].endswith("456")
    assert "99123" not in first.json["phone"]
    sms_code = last_code(PHONE)
    # A TOTP-looking or wrong code does not pass; the texted one does, once.
    assert (
        login(
            client, player.username, auth_code="000000" if sms_code != "000000" else "1"
        ).status_code
        == 401
    )
    ok = login(client, player.username, auth_code=sms_code)
    assert ok.status_code == 200, ok.json
    access = ok.json["token"]["access_token"]
    assert client.get("/api/auth/me", headers=bearer(access)).status_code == 200
    assert login(client, player.username, auth_code=sms_code).status_code == 401  # replay


def test_a_wrong_password_texts_nothing(client, factory, token_for):
    player = _with_phone(factory)
    _enable(client, token_for, player)
    assert login(client, player.username, "wrong-password-123").status_code == 401
    assert messages_to(PHONE) == []


def test_guessing_sms_codes_kills_the_code(client, factory, token_for, app):
    player = _with_phone(factory)
    _enable(client, token_for, player)
    login(client, player.username)
    sms_code = last_code(PHONE)
    wrong = f"{(int(sms_code) + 3) % 10**6:06d}"
    for _ in range(app.config["OTP_MAX_ATTEMPTS"]):
        assert login(client, player.username, auth_code=wrong).status_code in (401, 429)
    # Throttled or not, the code itself is dead after the allowed attempts.
    db.session.expire_all()
    row = db.session.scalar(sa.select(OneTimeCode).where(OneTimeCode.purpose == "login_2fa"))
    assert row.attempts == app.config["OTP_MAX_ATTEMPTS"]
    with atomic():
        assert otp.spend("login_2fa", PHONE, sms_code, user_id=player.id) is None
    reasons = set(
        db.session.scalars(sa.select(LoginEvent.reason).where(LoginEvent.user_id == player.id))
    )
    assert "sms_invalid" in reasons


def test_an_expired_sms_code_is_refused(client, factory, token_for, app):
    player = _with_phone(factory)
    _enable(client, token_for, player)
    login(client, player.username)
    sms_code = last_code(PHONE)
    with freeze_time(utcnow() + timedelta(seconds=app.config["OTP_TTL_SECONDS"] + 1)):
        assert login(client, player.username, auth_code=sms_code).status_code == 401


def test_login_code_requests_are_spaced(client, factory, token_for):
    player = _with_phone(factory)
    _enable(client, token_for, player)
    assert login(client, player.username).status_code == 401
    again = login(client, player.username)
    assert again.status_code == 429
    assert len(messages_to(PHONE)) == 1


def test_totp_stays_and_takes_precedence(client, factory, token_for):
    player = _with_phone(factory, totp_secret=ADMIN_SECRET)
    assert _enable(client, token_for, player).status_code == 409  # TOTP on: one method
    answer = login(client, player.username)
    assert answer.status_code == 401
    assert answer.json.get("method") != "sms"
    assert messages_to(PHONE) == []
    assert login(client, player.username, auth_code=code(ADMIN_SECRET)).status_code == 200


def test_staff_cannot_use_sms_codes(client, factory, token_for):
    staff = factory.staff("support", totp_secret=ADMIN_SECRET)
    with atomic():
        db.session.add(
            UserPhone(user_id=staff.id, number=PHONE, is_primary=True, verified_at=utcnow())
        )
    answer = client.post(
        "/api/user/2fa/sms/enable", json={"password": PASSWORD}, headers=token_for(staff)
    )
    assert answer.status_code == 403


def test_disabling_needs_the_password(client, factory, token_for):
    player = _with_phone(factory)
    _enable(client, token_for, player)
    bad = client.post(
        "/api/user/2fa/sms/disable", json={"password": "nope"}, headers=token_for(player)
    )
    assert bad.status_code == 400
    ok = client.post(
        "/api/user/2fa/sms/disable", json={"password": PASSWORD}, headers=token_for(player)
    )
    assert ok.status_code == 200
    assert login(client, player.username).status_code == 200


def test_an_sms_2fa_account_cannot_skip_it_with_a_one_time_code(client, factory, token_for):
    set_mode(factory, "both")
    player = _with_phone(factory, email="sms2fa@example.test")
    _enable(client, token_for, player)
    assert client.post("/api/auth/otp/request", json={"phone": PHONE}).status_code == 200
    answer = client.post("/api/auth/otp/verify", json={"phone": PHONE, "code": last_code(PHONE)})
    assert answer.status_code == 403
    assert "access_token" not in str(answer.json)
