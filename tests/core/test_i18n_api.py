"""API error messages in the caller's language: the ``code`` never changes, the ``message`` does."""

from __future__ import annotations

import pytest

from app.core import errors, opsettings
from app.core.db import atomic
from app.identity.models import User

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}


def _login(client, headers=None, query=""):
    return client.post(
        f"/api/auth/login{query}",
        json={"username": "nobody_here", "password": "Wrong-Password-1!"},
        headers=headers or {},
    )


def test_an_error_message_follows_accept_language_and_the_code_stays(client):
    english = _login(client)
    german = _login(client, GERMAN)
    assert english.status_code == german.status_code == 401
    assert english.get_json()["code"] == german.get_json()["code"] == "AUTHENTICATION_ERROR"
    assert english.get_json()["message"] == "Invalid username/email or password"
    assert german.get_json()["message"] == (
        "Ungültiger Benutzername/E-Mail oder ungültiges Passwort"
    )


def test_validation_errors_are_translated_field_by_field(client):
    response = client.post("/api/auth/login", json={}, headers=GERMAN)
    body = response.get_json()
    assert response.status_code == 400
    assert body["code"] == "VALIDATION_ERROR"
    assert body["message"] == "Validierung fehlgeschlagen"
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages["username"] == "Ein Benutzername oder eine E-Mail-Adresse ist erforderlich"
    # marshmallow's own wording too
    forgot = client.post("/api/auth/forgot-password", json={}, headers=GERMAN).get_json()
    assert forgot["errors"] == [
        {"field": "email", "message": "Für dieses Pflichtfeld fehlen Daten."}
    ]


def test_lang_query_wins_over_the_header(client):
    assert _login(client, GERMAN, "?lang=en").get_json()["message"].startswith("Invalid")
    assert (
        _login(client, {"Accept-Language": "en"}, "?lang=de")
        .get_json()["message"]
        .startswith("Ungültiger")
    )


def test_the_players_stored_language_is_used_when_the_request_names_none(
    client, factory, token_for
):
    player = factory.player(language="de")
    response = client.post("/api/notifications/987654/read", headers=token_for(player))
    assert response.status_code == 404
    assert response.get_json() == {
        "success": False,
        "status": 404,
        "code": "NOT_FOUND",
        "message": "Benachrichtigung nicht gefunden",
    }
    # ?lang= still wins over the stored choice.
    again = client.post("/api/notifications/987654/read?lang=en", headers=token_for(player))
    assert again.get_json()["message"] == "Notification not found"


@pytest.mark.parametrize(
    "header",
    [
        "fr-FR,fr;q=0.9",
        "*",
        "de;q=abc",
        "xx-" + "y" * 5000,
        "de\x00",
        "",
    ],
)
def test_an_unknown_or_garbled_language_falls_back_to_english_never_a_500(client, header):
    response = _login(client, {"Accept-Language": header})
    assert response.status_code == 401
    assert response.get_json()["message"] in {
        "Invalid username/email or password",
        "Ungültiger Benutzername/E-Mail oder ungültiges Passwort",
    }
    if header.startswith(("fr", "xx", "*")) or header == "":
        assert response.get_json()["message"].startswith("Invalid")


@pytest.mark.parametrize("lang", ["fr", "de-", "../../etc", "1e309", "DE_de", "%C3%A4"])
def test_a_lang_parameter_outside_the_enabled_languages_is_ignored(client, lang):
    response = _login(client, {"Accept-Language": "en"}, f"?lang={lang}")
    assert response.status_code == 401
    expected = "Ungültiger" if lang.lower().startswith("de") else "Invalid"
    assert response.get_json()["message"].startswith(expected)


def test_a_language_the_operator_disabled_is_not_served(client, factory):
    admin = factory.staff("admin")
    with atomic():
        opsettings.put_many({"languages_enabled": ["en"]}, actor=admin)
    assert _login(client, GERMAN).get_json()["message"].startswith("Invalid")
    assert _login(client, query="?lang=de").get_json()["message"].startswith("Invalid")
    with atomic():
        opsettings.put_many({"languages_enabled": None}, actor=admin)
    assert _login(client, GERMAN).get_json()["message"].startswith("Ungültiger")


def test_an_unknown_language_setting_is_refused(client, factory, token_for):
    admin = factory.staff("admin")
    response = client.put(
        "/api/admin/settings",
        json={"settings": {"languages_enabled": ["en", "klingon"]}},
        headers=token_for(admin),
    )
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "settings.languages_enabled"
    assert opsettings.value("languages_enabled") == ["en", "de"]
    assert isinstance(admin, User)


def test_a_nul_byte_in_lang_is_a_clear_400_not_a_500(client):
    response = _login(client, GERMAN, "?lang=%00")
    assert response.status_code == 400
    assert response.get_json()["code"] == "VALIDATION_ERROR"


def test_an_outage_answer_stays_english_so_it_never_waits_on_the_database(app):
    # Choosing the language may read the languages setting from the database that just
    # failed; the 503 goes out without it.
    with app.test_request_context("/api/wallet", headers=GERMAN):
        response = errors.outage_response()
        assert response.status_code == 503
        assert response.get_json()["message"] == (
            "A service we depend on is unavailable, retry later"
        )
        assert errors.envelope(404, "NOT_FOUND", "Ticket not found").get_json()["message"] == (
            "Ticket nicht gefunden"
        )
