"""The console in the staff member's language, and the e-mail templates page."""

from __future__ import annotations

import sqlalchemy as sa

from app.core.extensions import db
from app.core.models import AuditLog, MailTemplate, OutboxEmail
from app.identity.models import User

HX = {"HX-Request": "true"}
EDIT = "/admin/mail-templates/password_reset/de"


def test_the_language_switcher_stores_the_choice_and_the_console_follows_it(signed_in):
    client, staff = signed_in("support")
    page = client.get("/admin/").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert 'id="language-switcher"' in page
    assert ">Sign out<" in page

    response = client.post("/admin/language", data={"language": "de", "next": "/admin/players"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/players")
    assert db.session.get(User, staff.user.id).language == "de"
    page = client.get("/admin/players").get_data(as_text=True)
    assert '<html lang="de">' in page
    assert ">Abmelden<" in page
    assert ">Spieler<" in page
    assert "<title>Spieler · JackpotX</title>" in page
    audit = db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "staff.language_change")
    ).one()
    assert (audit.before, audit.after) == ({"language": None}, {"language": "de"})


def test_the_switcher_refuses_a_language_that_is_not_enabled_and_a_foreign_next(signed_in):
    client, staff = signed_in("support")
    for language in ("fr", "", "de\x00", "x" * 300):
        assert client.post("/admin/language", data={"language": language}).status_code == 400
    assert db.session.get(User, staff.user.id).language is None
    response = client.post(
        "/admin/language", data={"language": "de", "next": "https://evil.example/admin"}
    )
    assert response.headers["Location"].endswith("/admin/")


def test_the_login_page_follows_the_browsers_language(client):
    page = client.get("/admin/login", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert "Anmeldung für Mitarbeiter" in page


def test_error_pages_are_translated(signed_in):
    client, _staff = signed_in("support")
    client.post("/admin/language", data={"language": "de"})
    page = client.get("/admin/settings")
    assert page.status_code == 403
    assert "Zugriff verweigert" in page.get_data(as_text=True)


def test_only_settings_managers_see_the_mail_templates(signed_in):
    support, _ = signed_in("support")
    assert support.get("/admin/mail-templates").status_code == 403
    assert support.get(EDIT).status_code == 403
    admin, _ = signed_in("admin")
    page = admin.get("/admin/mail-templates").get_data(as_text=True)
    assert 'data-template="password_reset" data-language="de"' in page
    assert 'data-template="email_verification" data-language="en"' in page
    assert admin.get("/admin/mail-templates/nope/de").status_code == 404
    assert admin.get("/admin/mail-templates/password_reset/fr").status_code == 404


def test_an_admin_previews_saves_test_sends_and_resets_a_template(signed_in):
    client, staff = signed_in("admin")
    page = client.get(EDIT).get_data(as_text=True)
    # The German default text is the starting point, variables as placeholders.
    assert "Setzen Sie Ihr JackpotX-Passwort zurück" in page
    assert "Hallo {{ username }}," in page

    draft = {"subject": "Passwort für {{ username }}", "body": "Link: {{ link }}"}
    preview = client.post(EDIT, data={**draft, "action": "preview"}, headers=HX)
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert 'id="mail-preview"' in html
    assert "<html" not in html
    assert "Passwort für player1" in html
    assert "https://casino.example/reset-password?token=SAMPLE-TOKEN" in html
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailTemplate)) == 0

    sent = client.post(EDIT, data={**draft, "action": "test"})
    assert sent.status_code == 302
    mail = db.session.scalars(sa.select(OutboxEmail).order_by(OutboxEmail.id.desc())).first()
    assert (mail.to_address, mail.subject) == (staff.user.email, "[TEST] Passwort für player1")

    saved = client.post(EDIT, data={**draft, "action": "save"})
    assert saved.status_code == 302
    row = db.session.scalars(sa.select(MailTemplate)).one()
    assert (row.key, row.language, row.subject) == ("password_reset", "de", draft["subject"])
    assert "bearbeiteten Text" not in client.get(EDIT).get_data(as_text=True)  # staff speaks en
    assert "This language uses an edited text." in client.get(EDIT).get_data(as_text=True)

    assert client.post(EDIT, data={**draft, "action": "reset"}).status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailTemplate)) == 0
    actions = set(db.session.scalars(sa.select(AuditLog.action)))
    assert {"mail_template.save", "mail_template.reset", "mail_template.test_send"} <= actions


def test_an_injection_attempt_is_shown_as_an_error_and_changes_nothing(signed_in):
    client, _ = signed_in("admin")
    data = {"subject": "Hi", "body": "{{ ''.__class__.__mro__ }}", "action": "save"}
    response = client.post(EDIT, data=data)
    assert response.status_code == 400
    assert "no attribute access" in response.get_data(as_text=True)
    preview = client.post(EDIT, data={**data, "action": "preview"}, headers=HX)
    assert preview.status_code == 400
    assert 'id="preview-error"' in preview.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(MailTemplate)) == 0


def test_the_dashboard_figures_and_charts_follow_the_language(signed_in):
    client, _ = signed_in("admin")
    client.post("/admin/language", data={"language": "de"})
    page = client.get("/admin/").get_data(as_text=True)
    assert "Neue Spieler (24 h)" in page
    assert "GGR pro Tag, letzte 14 Tage" in page
    assert "Einzahlungen pro UTC-Tag" in page
