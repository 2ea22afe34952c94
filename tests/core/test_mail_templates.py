"""E-mails in the recipient's language; staff-edited templates in a sandbox, audited."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from jinja2.exceptions import SecurityError

from app.core import mail_templates
from app.core.db import atomic
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.core.models import AuditLog, MailTemplate, OutboxEmail
from app.identity import accounts


def _last_mail(user_id: int) -> OutboxEmail:
    return db.session.scalars(
        sa.select(OutboxEmail).where(OutboxEmail.user_id == user_id).order_by(OutboxEmail.id.desc())
    ).first()


def test_a_reset_mail_is_written_in_the_players_language(factory):
    german = factory.player(language="de")
    english = factory.player(language=None)
    for user in (german, english):
        accounts.forgot_password(user.email)
    de_mail, en_mail = _last_mail(german.id), _last_mail(english.id)
    assert de_mail.subject == "Setzen Sie Ihr JackpotX-Passwort zurück"
    assert de_mail.body.startswith(f"Hallo {german.username},\n\nVerwenden Sie diesen Link")
    assert "/reset-password?token=" in de_mail.body
    assert en_mail.subject == "Reset your JackpotX password"
    assert en_mail.body.startswith(f"Hello {english.username},\n\nUse this link within")
    assert de_mail.template == en_mail.template == "password_reset"


def test_an_unknown_stored_language_gets_the_fallback(factory):
    user = factory.player(language="pt-BR")
    accounts.forgot_password(user.email)
    assert _last_mail(user.id).subject == "Reset your JackpotX password"


def test_a_staff_template_overrides_the_file_for_its_language_only(factory):
    admin = factory.staff("admin")
    with atomic():
        mail_templates.save(
            "password_reset",
            "de",
            "Neues Passwort für {{ username|upper }}",
            "Servus {{ username }}!\n{% if minutes %}Gültig {{ minutes }} Minuten.{% endif %}\n"
            "{{ link }}\n",
            actor=admin,
        )
    german, english = factory.player(language="de"), factory.player(language="en")
    accounts.forgot_password(german.email)
    accounts.forgot_password(english.email)
    mail = _last_mail(german.id)
    assert mail.subject == f"Neues Passwort für {german.username.upper()}"
    assert mail.body.startswith(f"Servus {german.username}!\nGültig ")
    assert _last_mail(english.id).subject == "Reset your JackpotX password"

    audit = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "mail_template.save")
    ).one()
    assert (audit.actor_id, audit.target_id, audit.before) == (admin.id, "password_reset:de", None)

    with atomic():
        assert mail_templates.reset("password_reset", "de", actor=admin) is True
    accounts.forgot_password(german.email)
    assert _last_mail(german.id).subject == "Setzen Sie Ihr JackpotX-Passwort zurück"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailTemplate)) == 0


SSTI = [
    "{{ ''.__class__.__mro__ }}",
    "{{ username.__class__.__init__.__globals__ }}",
    "{{ username['__class__'] }}",
    "{{ config }}",
    "{{ self }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for c in username %}{% for d in username %}x{% endfor %}{% endfor %}",
    "{{ 'a' * 100000000 }}",
    "{{ 9 ** 999999 }}",
    "{{ username|attr('__class__') }}",
    "{{ username|format('%s') }}",
    "{% include 'console/base.html' %}",
    "{% extends 'console/base.html' %}",
    "{% set x = 1 %}{{ x }}",
    "{% macro m() %}{% endmacro %}",
    "{{ range(10) }}",
    "{{ lipsum() }}",
    "{{ username.upper() }}",
    "{{ nope }}",
    "{% if %}",
    "{{ username",
]


@pytest.mark.parametrize("payload", SSTI)
def test_template_injection_is_refused_and_nothing_is_stored(factory, payload):
    admin = factory.staff("admin")
    for subject, body in ((payload, "Hello {{ username }}"), ("Hi", payload)):
        with pytest.raises(ValidationError), atomic():
            mail_templates.save("password_reset", "en", subject, body, actor=admin)
        with pytest.raises(ValidationError):
            mail_templates.preview("password_reset", "en", subject, body)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailTemplate)) == 0
    assert not db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "mail_template.save")
    ).all()


def test_the_sandbox_itself_refuses_python_internals():
    env = mail_templates.sandbox_environment()
    with pytest.raises(SecurityError):
        env.from_string("{{ ''.__class__.__mro__ }}").render()
    with pytest.raises(SecurityError):
        env.from_string("{{ username.__class__ }}").render(username="x")
    assert env.globals == {}
    assert set(env.filters) == mail_templates.ALLOWED_FILTERS


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("", "body"),
        ("   ", "body"),
        ("subject", ""),
        ("x" * 201, "body"),
        ("subject", "y" * 20_001),
        ("sub\x00ject", "body"),
        ("subject", "bo\x00dy"),
        ("{% if username %}\n{% endif %}two\nlines", "body"),
    ],
)
def test_absurd_texts_are_refused(factory, subject, body):
    admin = factory.staff("admin")
    with pytest.raises(ValidationError), atomic():
        mail_templates.save("password_reset", "en", subject, body, actor=admin)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailTemplate)) == 0


def test_unknown_keys_and_languages_are_refused(factory):
    admin = factory.staff("admin")
    with pytest.raises(NotFound):
        mail_templates.save("../../etc/passwd", "en", "s", "b", actor=admin)
    with pytest.raises(ValidationError):
        mail_templates.save("password_reset", "fr", "s", "b", actor=admin)


def test_preview_uses_sample_values_and_stores_nothing():
    subject, body = mail_templates.preview(
        "email_verification", "de", "Code {{ code }}", "Hallo {{ username|title }}: {{ link }}"
    )
    assert subject == "Code 123456"
    assert body == "Hallo Player1: https://casino.example/verify-email?token=SAMPLE-TOKEN"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailTemplate)) == 0


def test_a_test_send_goes_to_the_staff_members_own_address_audited(factory):
    admin = factory.staff("admin", email="ops-lead@example.test")
    with atomic():
        row = mail_templates.test_send(
            "password_reset", "en", "Reset {{ username }}", "Link: {{ link }}", actor=admin
        )
    mail = db.session.get(OutboxEmail, row.id)
    assert (mail.to_address, mail.subject) == ("ops-lead@example.test", "[TEST] Reset player1")
    assert mail.template == "test:password_reset"
    audit = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "mail_template.test_send")
    ).one()
    assert audit.after == {"to": "ops-lead@example.test", "outbox_id": row.id}


def test_a_stored_template_broken_later_falls_back_to_the_file(factory):
    with atomic():
        db.session.add(
            MailTemplate(key="password_reset", language="en", subject="{{ gone }}", body="x")
        )
    user = factory.player(language="en")
    accounts.forgot_password(user.email)
    assert _last_mail(user.id).subject == "Reset your JackpotX password"
