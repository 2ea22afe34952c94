"""Marketing consent is a column with the time of its last change: set at registration and in
the profile, respected by CRM broadcasts and marketing e-mail (service messages ignore it)."""

from __future__ import annotations

import os
import tempfile
import warnings
from datetime import timedelta

import sqlalchemy as sa
from freezegun import freeze_time

from app.core import mail
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.core.models import OutboxEmail
from app.identity.models import User


def _register(client, **extra):
    body = {"username": "optin", "email": "optin@example.test", "password": "StrongPass123!"}
    body.update(extra)
    return client.post("/api/auth/register", json=body)


def _user(name: str) -> User:
    db.session.expire_all()
    return db.session.scalar(sa.select(User).where(User.username == name))


def test_registration_records_the_consent_and_when_it_was_given(client):
    with freeze_time("2026-11-01 10:00:00"):
        answer = _register(client, marketing_consent=True)
    assert answer.status_code == 201, answer.json
    user = _user("optin")
    assert user.marketing_consent is True
    assert user.marketing_consent_at.isoformat().startswith("2026-11-01T10:00:00")


def test_registration_without_an_answer_means_no_consent(client):
    assert _register(client).status_code == 201
    user = _user("optin")
    assert user.marketing_consent is False
    assert user.marketing_consent_at is not None


def test_registration_refuses_a_consent_that_is_not_a_boolean(client):
    answer = _register(client, marketing_consent="perhaps")
    assert answer.status_code == 400
    assert answer.json["code"] == "VALIDATION_ERROR"
    assert _user("optin") is None


def test_the_profile_changes_consent_and_stamps_only_real_changes(client, factory, token_for):
    player = factory.player()
    headers = token_for(player)
    # Later than the token's issue time (a frozen past would make the token "not yet valid").
    start = utcnow().replace(microsecond=0)
    first, second, third = (start + timedelta(minutes=n) for n in (1, 2, 3))
    with freeze_time(first):
        on = client.put("/api/user/profile", headers=headers, json={"marketing_consent": True})
    assert on.status_code == 200, on.json
    assert on.json["data"]["marketing_consent"] is True
    assert on.json["data"]["marketing_consent_at"].startswith(first.isoformat()[:19])
    with freeze_time(second):
        same = client.put("/api/user/profile", headers=headers, json={"marketing_consent": True})
    assert same.json["data"]["marketing_consent_at"].startswith(first.isoformat()[:19])
    with freeze_time(third):
        off = client.put(
            "/api/user/profile/update", headers=headers, json={"marketing_consent": False}
        )
    assert off.json["data"]["marketing_consent"] is False
    assert off.json["data"]["marketing_consent_at"].startswith(third.isoformat()[:19])
    shown = client.get("/api/user/profile", headers=headers).json["data"]
    assert shown["marketing_consent"] is False


def test_a_legacy_preferences_flag_sets_the_column_and_leaves_preferences(
    client, factory, token_for
):
    player = factory.player()
    answer = client.put(
        "/api/user/profile",
        headers=token_for(player),
        json={"preferences": {"theme": "dark", "marketing_consent": True}},
    )
    assert answer.status_code == 200, answer.json
    user = _user(player.username)
    assert user.marketing_consent is True
    assert user.preferences == {"theme": "dark"}


def test_the_profile_refuses_a_consent_that_is_not_a_boolean(client, factory, token_for):
    player = factory.player()
    answer = client.put(
        "/api/user/profile", headers=token_for(player), json={"marketing_consent": "abc"}
    )
    assert answer.status_code == 400
    assert _user(player.username).marketing_consent is False


def test_marketing_mail_is_not_queued_without_consent_but_service_mail_is(factory):
    yes = factory.player(marketing_consent=True)
    # The old preferences flag no longer counts: only the column does.
    no = factory.player(preferences={"marketing_consent": True})
    with atomic():
        sent = mail.queue_email(to=yes.email, subject="Offer", body="50%",
                                template="crm_broadcast", user_id=yes.id)  # fmt: skip
        refused = mail.queue_email(to=no.email, subject="Offer", body="50%",
                                   template="crm_broadcast", user_id=no.id)  # fmt: skip
        anonymous = mail.queue_email(to="x@example.test", subject="Offer", body="50%",
                                     template="crm_broadcast")  # fmt: skip
        service = mail.queue_email(to=no.email, subject="Reset", body="link",
                                   template="password_reset", user_id=no.id)  # fmt: skip
    assert sent is not None
    assert service is not None
    assert refused is None
    assert anonymous is None
    templates = db.session.scalars(
        sa.select(OutboxEmail.template).where(OutboxEmail.user_id == no.id)
    ).all()
    assert templates == ["password_reset"]


def test_a_broadcast_ignores_the_old_preferences_flag(client, factory, token_for):
    from app.messaging.jobs import fan_out_broadcast

    factory.player(country="IS", preferences={"marketing_consent": True})
    column = factory.player(country="IS", marketing_consent=True)
    staff = token_for(factory.staff("manager"))
    seg = client.post(
        "/api/admin/crm/segments",
        headers=staff,
        json={"name": "Iceland", "condition": "country = 'IS'"},
    ).json["data"]
    queued = client.post(
        "/api/admin/crm/broadcast",
        headers=staff,
        json={"segment_id": seg["id"], "title": "Hi", "message": "Offer", "email": True},
    )
    result = fan_out_broadcast(queued.json["data"]["id"])
    assert result["recipients"] == 1
    assert result["skipped_no_consent"] == 1
    mails = db.session.scalars(
        sa.select(OutboxEmail.user_id).where(OutboxEmail.template == "crm_broadcast")
    ).all()
    assert mails == [column.id]


def test_the_migration_moves_the_preferences_flag_into_the_column():
    from flask_migrate import upgrade

    from app import create_app

    migrations = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "migrations"
    )
    path = os.path.join(tempfile.mkdtemp(), "consent.sqlite3")
    app = create_app({"ENV": "testing", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"})
    with app.app_context(), warnings.catch_warnings():
        # SQLite cannot reflect expression indexes (lower(email)); batch mode reflects users.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        upgrade(directory=migrations, revision="0002")
        insert = sa.text(
            "INSERT INTO users (username, email, password_hash, role_id, status, currency, "
            "failed_logins, kyc_status, kyc_level, totp_enabled, preferences, created_at, "
            "updated_at) VALUES (:u, :u || '@x.test', 'h', 2, 'active', 'EUR', 0, 'none', 0, "
            "false, :p, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
        with db.engine.begin() as conn:
            conn.execute(insert, {"u": "yes", "p": '{"marketing_consent": true, "theme": "d"}'})
            conn.execute(insert, {"u": "no", "p": '{"marketing_consent": false}'})
            conn.execute(insert, {"u": "none", "p": None})
        upgrade(directory=migrations)
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT username, marketing_consent, marketing_consent_at IS NOT NULL, "
                    "preferences FROM users ORDER BY username"
                )
            ).all()
        db.engine.dispose()
    got = {r[0]: (bool(r[1]), bool(r[2])) for r in rows}
    assert got == {"no": (False, False), "none": (False, False), "yes": (True, True)}
    yes_prefs = rows[2][3]  # raw JSON text on SQLite
    assert "theme" in yes_prefs
    assert "marketing_consent" not in yes_prefs
