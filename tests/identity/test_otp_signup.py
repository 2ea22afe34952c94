"""OTP sign-up (issue 17, UserState style): an e-mail address or a phone and a one-time code
instead of the captcha + password step; the availability checks enumerate nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.core.base import utcnow
from app.core.extensions import db
from app.core.models import OutboxEmail
from app.identity.models import OneTimeCode, User, UserPhone
from tests.identity.identity_helpers_otp import set_mode
from tests.identity.sms_helpers import last_code
from tests.identity_helpers import ADMIN_SECRET
from tests.identity_helpers import code as totp_code

NEW = "newcomer@example.test"
PHONE = "+35699123456"


@pytest.fixture
def otp_mode(factory):
    set_mode(factory, "otp")


def _mail_code(address: str) -> tuple[str, str]:
    db.session.expire_all()
    mail = db.session.scalars(
        sa.select(OutboxEmail)
        .where(OutboxEmail.to_address == address)
        .order_by(OutboxEmail.id.desc())
    ).first()
    assert mail is not None, f"no mail to {address}"
    return re.search(r"\b(\d{6})\b", mail.body).group(1), mail.template


def _request(client, **dest):
    return client.post("/api/auth/otp/request", json=dest)


def _verify(client, **body):
    return client.post("/api/auth/otp/verify", json=body)


def test_password_registration_is_closed_in_otp_mode_and_otp_in_password_mode(client, factory):
    body = {"username": "pw_player", "email": "pw@example.test", "password": "StrongPass123!"}
    assert _request(client, email=NEW).status_code == 403  # default mode: password
    assert client.get("/api/auth/signup-mode").json["data"]["mode"] == "password"
    set_mode(factory, "otp")
    refused = client.post("/api/auth/register", json=body)
    assert refused.status_code == 403
    assert refused.json["signup_mode"] == "otp"
    set_mode(factory, "both")
    assert client.post("/api/auth/register", json=body).status_code == 201
    assert _request(client, email=NEW).status_code == 200


def test_sign_up_by_email_opens_a_verified_account_without_a_password(client, otp_mode):
    assert _request(client, email=NEW).status_code == 200
    code, template = _mail_code(NEW)
    assert template == "signup_code"
    answer = _verify(client, email=NEW, code=code, username="newcomer")
    assert answer.status_code == 200, answer.json
    assert answer.json["created"] is True
    headers = {"Authorization": f"Bearer {answer.json['token']['access_token']}"}
    me = client.get("/api/auth/me", headers=headers).json["data"]
    assert me["email_verified"] is True
    assert me["has_password"] is False
    # No password yet: the random one nobody knows cannot be guessed; a first one can be set.
    assert (
        client.post(
            "/api/user/password/set", json={"new_password": "short"}, headers=headers
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/user/password/set",
            json={"new_password": "A-long-first-passphrase-9"},
            headers=headers,
        ).status_code
        == 200
    )
    again = client.post(
        "/api/user/password/set", json={"new_password": "Another-long-phrase-10"}, headers=headers
    )
    assert again.status_code == 409
    login = client.post(
        "/api/auth/login", json={"username": "newcomer", "password": "A-long-first-passphrase-9"}
    )
    assert login.status_code == 200


def test_sign_up_by_phone_opens_an_account_with_a_verified_primary_number(client, otp_mode):
    assert _request(client, phone="+356 9912 3456").status_code == 200
    code = last_code(PHONE)
    answer = _verify(
        client, phone=PHONE, code=code, username="texter", password="A-long-passphrase-77"
    )
    assert answer.status_code == 200, answer.json
    user = db.session.scalar(sa.select(User).where(User.username == "texter"))
    assert user.has_password is True
    assert user.phone == PHONE
    (phone,) = db.session.scalars(sa.select(UserPhone).where(UserPhone.user_id == user.id))
    assert phone.is_primary
    assert phone.verified_at is not None
    # Later, the same number signs the account in.
    with freeze_time(utcnow() + timedelta(minutes=2)):
        assert _request(client, phone=PHONE).status_code == 200
        signin = _verify(client, phone=PHONE, code=last_code(PHONE))
    assert signin.status_code == 200
    assert signin.json["created"] is False
    assert signin.json["user"]["id"] == user.id


def test_a_missing_username_keeps_the_code_for_the_corrected_request(client, otp_mode):
    _request(client, email=NEW)
    code, _ = _mail_code(NEW)
    missing = _verify(client, email=NEW, code=code)
    assert missing.status_code == 400
    assert "username" in missing.json.get("errors", {}) or "username" in str(missing.json)
    assert _verify(client, email=NEW, code=code, username="late_name").status_code == 200


def test_guessing_the_code_kills_it(client, otp_mode, app):
    _request(client, email=NEW)
    code, _ = _mail_code(NEW)
    wrong = f"{(int(code) + 7) % 10**6:06d}"
    for _ in range(app.config["OTP_MAX_ATTEMPTS"]):
        answer = _verify(client, email=NEW, code=wrong, username="guesser")
        assert answer.status_code == 400
    assert _verify(client, email=NEW, code=code, username="guesser").status_code == 400
    assert db.session.scalar(sa.select(User).where(User.username == "guesser")) is None


@pytest.mark.parametrize(
    "absurd",
    [
        "abc",
        "",
        "0.001",
        "-5",
        "1e309",
        "12345\x00",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
    ],  # full-width digits last
)
def test_absurd_codes_are_wrong_codes(client, otp_mode, absurd):
    _request(client, email=NEW)
    answer = _verify(client, email=NEW, code=absurd, username="absurd")
    assert answer.status_code in (400, 422)
    row = db.session.scalar(sa.select(OneTimeCode).where(OneTimeCode.destination == NEW))
    db.session.refresh(row)
    assert row.used_at is None


def test_a_replayed_code_opens_nothing(client, otp_mode):
    _request(client, email=NEW)
    code, _ = _mail_code(NEW)
    assert _verify(client, email=NEW, code=code, username="first").status_code == 200
    replay = _verify(client, email=NEW, code=code, username="second")
    assert replay.status_code == 400
    assert db.session.scalar(sa.select(User).where(User.username == "second")) is None


def test_an_expired_code_opens_nothing(client, otp_mode, app):
    _request(client, email=NEW)
    code, _ = _mail_code(NEW)
    with freeze_time(utcnow() + timedelta(seconds=app.config["OTP_TTL_SECONDS"] + 1)):
        answer = _verify(client, email=NEW, code=code, username="too_late")
    assert answer.status_code == 400


def _shape(response) -> tuple:
    body = response.json
    return response.status_code, body.get("message"), body.get("code"), tuple(sorted(body))


def test_requests_and_wrong_codes_answer_the_same_for_known_and_unknown_addresses(
    client, factory, otp_mode
):
    known = factory.player(email="known@example.test")
    staff = factory.staff("admin", email="boss@example.test", totp_secret=ADMIN_SECRET)
    answers = [_request(client, email=a) for a in ("known@example.test", NEW, "boss@example.test")]
    assert len({_shape(a) for a in answers}) == 1
    wrongs = [
        _verify(client, email=a, code="000000", username="x_user")
        for a in ("known@example.test", NEW, "boss@example.test", "never@example.test")
    ]
    # (a real code can be 000000 once in a million runs; the shapes would still match)
    assert len({_shape(w) for w in wrongs if w.status_code == 400}) == 1
    # The known player got a sign-in code (the text says they already have an account) ...
    _code, template = _mail_code("known@example.test")
    assert template == "signin_code"
    # ... staff get nothing at all (the code is recorded, so the limits count alike).
    assert (
        db.session.scalar(
            sa.select(sa.func.count()).where(OutboxEmail.to_address == "boss@example.test")
        )
        == 0
    )
    assert staff.id
    assert known.id
    # The limits answer alike too: a second request within the spacing is 429 for all.
    again = [_request(client, email=a) for a in ("known@example.test", NEW, "boss@example.test")]
    assert {a.status_code for a in again} == {429}


def test_a_sign_in_code_signs_the_player_in_and_needs_totp_when_it_is_on(client, factory, otp_mode):
    player = factory.player(email="two@example.test", totp_secret=ADMIN_SECRET)
    _request(client, email="two@example.test")
    code, _ = _mail_code("two@example.test")
    needs = _verify(client, email="two@example.test", code=code)
    assert needs.status_code == 401
    assert needs.json["requires_2fa"] is True
    wrong = _verify(client, email="two@example.test", code=code, auth_code="000000")
    assert wrong.status_code == 401
    ok = _verify(client, email="two@example.test", code=code, auth_code=totp_code(ADMIN_SECRET))
    assert ok.status_code == 200, ok.json
    assert ok.json["created"] is False
    assert ok.json["user"]["id"] == player.id


def test_the_availability_checks_reveal_only_what_registration_does(
    client, factory, app, monkeypatch
):
    factory.player(username="taken_name", email="taken@example.test")
    taken = client.post("/api/auth/check/username", json={"username": "TAKEN_name"})
    free = client.post("/api/auth/check/username", json={"username": "free_name"})
    assert taken.json["data"]["available"] is False
    assert free.json["data"]["available"] is True
    # E-mail: the same answer for a registered and a new address (only well-formedness).
    a = client.post("/api/auth/check/email", json={"email": "Taken@Example.test"})
    b = client.post("/api/auth/check/email", json={"email": "nobody@example.test"})
    assert a.status_code == b.status_code == 200
    assert a.json["data"]["acceptable"] is b.json["data"]["acceptable"] is True
    assert a.json["data"]["message"] == b.json["data"]["message"]
    assert client.post("/api/auth/check/email", json={"email": "not-an-address"}).status_code == 400
    phone = client.post("/api/auth/check/phone", json={"phone": "+356 9912 3456"})
    assert phone.json["data"]["phone"] == PHONE
    assert client.post("/api/auth/check/phone", json={"phone": "1e309"}).status_code == 400


def test_the_availability_checks_are_rate_limited_per_address(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "RATE_LIMIT_AVAILABILITY", "3 per hour")
    statuses = [
        client.post("/api/auth/check/username", json={"username": f"probe{n}"}).status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert client.post("/api/auth/check/email", json={"email": "a@example.test"}).status_code == 429
