"""Every console page in German: it renders (a translation with a wrong placeholder would be a
500) and the pages marked for issue 18 show their German texts, including the ones built in
Python (the settings registry's labels and hints, flashes, the generic form page).

``tests/core/test_i18n_templates_marked.py`` fails on any unmarked template text; this test
renders the pages with data, in German, as an Admin."""

from __future__ import annotations

import pytest

from tests.console.test_console_access import PAGES, subjects  # noqa: F401 - a fixture

#: Console pages that are not in the access matrix (one role each is enough here).
MORE_PAGES = (
    "/admin/content",
    "/admin/content/new",
    "/admin/exports",
    "/admin/reports/analytics",
    "/admin/reports/rtp",
    "/admin/mail-templates",
    "/admin/account/recovery-codes",
)

#: page → German texts it must show.
GERMAN = {
    "/admin/support": ["Unterhaltungen", "Chats und Tickets", "Zugewiesen an"],
    "/admin/crm/segments": ["CRM-Segmente", "Bedingung ausprobieren", "Neues Segment"],
    "/admin/crm/broadcasts": ["CRM-Rundsendungen", "Noch keine Rundsendungen."],
    "/admin/crm/segments/new": ["Neues Segment", "Segment speichern", "Felder:"],
    "/admin/content": ["Inhalte", "Neue Seite", "Neuer FAQ-Eintrag"],
    "/admin/content/new": ["Neue Seite", "Anlegen"],
    "/admin/exports": ["Meine Exporte", "Noch keine Exporte."],
    "/admin/reports/analytics": ["Aus den täglichen Verdichtungen", "Eingesetzt"],
    "/admin/reports/rtp": ["RTP-Prüfung", "vollständigen UTC-Tage"],
    "/admin/settings": ["Wartungsmodus", "Standardwert aus der Umgebung: MAINTENANCE_MODE."],
    "/admin/account/recovery-codes": ["Neue Wiederherstellungscodes erstellen"],
    "/admin/jobs": ["ClickHouse-Export"],
}

#: English that must be gone from those pages.
ENGLISH = {
    "/admin/settings": ["Environment default", "Maintenance mode:"],
    "/admin/support": ["Chats and tickets", "Assigned to"],
    "/admin/crm/segments": ["Try a condition"],
    "/admin/reports/rtp": ["Each game's RTP"],
}


@pytest.fixture
def german_admin(signed_in):
    client, _staff = signed_in("admin")
    assert client.post("/admin/language", data={"language": "de"}).status_code == 302
    return client


def test_every_console_page_renders_in_german(german_admin, player, subjects):  # noqa: F811
    pages = [p for p, roles in PAGES.items() if "admin" in roles] + list(MORE_PAGES)
    for path in sorted(set(pages)):
        url = path.format(player=player.id, **subjects)
        response = german_admin.get(url)
        assert response.status_code == 200, (url, response.get_data(as_text=True)[:300])
        page = response.get_data(as_text=True)
        if "<html" in page:
            assert '<html lang="de">' in page, url
        for text in GERMAN.get(path, ()):
            assert text in page, (url, text)
        for text in ENGLISH.get(path, ()):
            assert text not in page, (url, text)
