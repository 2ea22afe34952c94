"""E-mail verification (issue 17): a link token and a 6-digit code, single use, expiring,
resend spaced and capped; the operator decides what an unverified player may not do."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from app.core.base import utcnow
from app.core.errors import EmailNotVerified
from app.core.extensions import db
from app.core.models import OutboxEmail
from app.identity.models import EmailVerification, User
from app.payments import hooks as payment_hooks


def _register(client, name="verifyme"):
    body = {"username": name, "email": f"{name}@example.test", "password": "StrongPass123!"}
    answer = client.post("/api/auth/register", json=body)
    assert answer.status_code == 201, answer.json
    db.session.expire_all()
    return db.session.scalar(sa.select(User).where(User.username == name))


def _mails(user):
    return list(
        db.session.scalars(
            sa.select(OutboxEmail)
            .where(OutboxEmail.user_id == user.id, OutboxEmail.template == "email_verification")
            .order_by(OutboxEmail.id)
        )
    )


def _secrets(mail):
    token = re.search(r"verify-email\?token=(\S+)", mail.body).group(1)
    code = re.search(r"code in the app: (\d{6})", mail.body).group(1)
    return token, code


def _fresh(user):
    db.session.expire_all()
    return db.session.get(User, user.id)


def test_registration_mails_a_link_and_a_code_stored_only_as_digests(client):
    user = _register(client)
    assert user.email_verified_at is None
    (mail,) = _mails(user)
    token, code = _secrets(mail)
    row = db.session.scalar(
        sa.select(EmailVerification).where(EmailVerification.user_id == user.id)
    )
    assert token not in (row.token_hash, row.code_hash)
    assert code not in row.code_hash
    assert row.email == user.email


def test_the_link_verifies_once_and_the_profile_shows_it(client, token_for):
    user = _register(client)
    token, _code = _secrets(_mails(user)[0])
    answer = client.post("/api/auth/verify-email", json={"token": token})
    assert answer.status_code == 200, answer.json
    assert _fresh(user).email_verified_at is not None
    profile = client.get("/api/user/profile", headers=token_for(user)).json["data"]
    assert profile["email_verified"] is True
    assert profile["email_verified_at"]
    replay = client.post("/api/auth/verify-email", json={"token": token})
    assert replay.status_code == 400
    assert replay.json["code"] == "VALIDATION_ERROR"


def test_an_expired_link_or_code_is_refused(client, token_for):
    user = _register(client)
    token, code = _secrets(_mails(user)[0])
    with freeze_time(utcnow() + timedelta(days=1, seconds=5)):
        assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 400
        headers = token_for(_fresh(user))
        assert (
            client.post("/api/auth/verify-email", json={"code": code}, headers=headers).status_code
            == 400
        )
    assert _fresh(user).email_verified_at is None


def test_the_code_needs_a_login_and_wrong_codes_are_counted_until_the_code_dies(client, token_for):
    user = _register(client)
    _token, code = _secrets(_mails(user)[0])
    assert client.post("/api/auth/verify-email", json={"code": code}).status_code == 401
    headers = token_for(user)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        answer = client.post("/api/auth/verify-email", json={"code": wrong}, headers=headers)
        assert answer.status_code == 400
    # Five wrong guesses spent the code: even the right one is refused now.
    answer = client.post("/api/auth/verify-email", json={"code": code}, headers=headers)
    assert answer.status_code == 400
    assert _fresh(user).email_verified_at is None


def test_the_right_code_verifies_and_spends_the_link_too(client, token_for):
    user = _register(client)
    token, code = _secrets(_mails(user)[0])
    headers = token_for(user)
    assert (
        client.post("/api/auth/verify-email", json={"code": code}, headers=headers).status_code
        == 200
    )
    assert _fresh(user).email_verified_at is not None
    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 400


def test_resend_is_spaced_and_capped_per_day(client, token_for):
    user = _register(client)
    headers = token_for(user)
    too_soon = client.post("/api/auth/verify-email/resend", headers=headers)
    assert too_soon.status_code == 429
    assert int(too_soon.headers["Retry-After"]) > 0
    start = utcnow()
    for step in range(1, 5):
        with freeze_time(start + timedelta(minutes=2 * step)):
            answer = client.post("/api/auth/verify-email/resend", headers=headers)
            assert answer.status_code == 200, answer.json
    assert len(_mails(user)) == 5
    with freeze_time(start + timedelta(minutes=20)):
        headers = token_for(user)  # the first access token expired meanwhile
        capped = client.post("/api/auth/verify-email/resend", headers=headers)
        assert capped.status_code == 429
    # The newest code works.
    _token, code = _secrets(_mails(user)[-1])
    with freeze_time(start + timedelta(minutes=21)):
        headers = token_for(user)
        answer = client.post("/api/auth/verify-email", json={"code": code}, headers=headers)
        assert answer.status_code == 200
        again = client.post("/api/auth/verify-email/resend", headers=headers)
        assert again.status_code == 400  # already verified


def test_withdrawals_need_a_verified_email_by_default_and_the_operator_decides(
    app, factory, monkeypatch
):
    unverified = factory.player(email_verified_at=None)
    verified = factory.player()
    with pytest.raises(EmailNotVerified):
        payment_hooks.withdrawal_checks(unverified.id, 1000, "EUR")
    payment_hooks.withdrawal_checks(verified.id, 1000, "EUR")
    payment_hooks.deposit_checks(unverified, 1000, "EUR")  # deposits allowed by default
    monkeypatch.setitem(app.config, "UNVERIFIED_EMAIL_BLOCKS", ["deposit"])
    payment_hooks.withdrawal_checks(unverified.id, 1000, "EUR")
    with pytest.raises(EmailNotVerified):
        payment_hooks.deposit_checks(unverified, 1000, "EUR")


def test_staff_changing_the_email_makes_it_unverified_and_mails_the_new_address(
    client, factory, token_for
):
    player = factory.player()
    assert player.email_verified_at is not None
    admin = factory.staff("admin")
    answer = client.put(
        f"/api/admin/users/{player.id}",
        json={"email": "New.Address@example.test"},
        headers=token_for(admin),
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["data"]["email_verified"] is False
    user = _fresh(player)
    assert user.email_verified_at is None
    (mail,) = _mails(user)
    assert mail.to_address == "new.address@example.test"
    token, _code = _secrets(mail)
    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 200
    assert _fresh(player).email_verified_at is not None


def test_a_link_mailed_to_an_old_address_does_not_verify_a_new_one(client, factory, token_for):
    user = _register(client, "mover")
    token, _code = _secrets(_mails(user)[0])
    admin = factory.staff("admin")
    answer = client.put(
        f"/api/admin/users/{user.id}",
        json={"email": "moved@example.test"},
        headers=token_for(admin),
    )
    assert answer.status_code == 200
    assert client.post("/api/auth/verify-email", json={"token": token}).status_code == 400
    assert _fresh(user).email_verified_at is None
