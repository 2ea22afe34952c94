"""Game pages may be framed by the player app's origins (GAME_EMBED_ORIGINS), and only by them;
by default nobody may frame anything."""

from __future__ import annotations

import pytest

from app.core.security import embed_origins

PAGES = ("/originals/games/jxo-dice", "/originals/fairness", "/originals/play/not-a-token")


@pytest.mark.parametrize("path", PAGES)
def test_by_default_no_page_may_be_framed(client, path):
    headers = client.get(path).headers
    assert headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", PAGES)
def test_the_player_apps_origins_may_frame_game_pages(app, client, monkeypatch, path):
    origins = ["https://play.example.com", "http://localhost:3000"]
    monkeypatch.setitem(app.config, "GAME_EMBED_ORIGINS", origins)
    headers = client.get(path).headers
    assert "X-Frame-Options" not in headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://play.example.com http://localhost:3000;" in csp
    assert "frame-ancestors 'none'" not in csp
    # Everything else still refuses to be framed.
    for other in ("/admin/login", "/health", "/"):
        assert client.get(other).headers["X-Frame-Options"] == "DENY", other


def test_only_origins_are_accepted():
    assert embed_origins("https://a.example, http://b.test:8080/ ") == [
        "https://a.example",
        "http://b.test:8080",
    ]
    for bad in ("*", "https://a.example/games", "javascript:alert(1)", "a.example", "https://a b"):
        with pytest.raises(ValueError, match="GAME_EMBED_ORIGINS"):
            embed_origins(bad)
