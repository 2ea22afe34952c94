"""Fixtures for content tests: staff who may edit content, players, a recorder of events."""

from __future__ import annotations

import pytest

from app.core.bus import subscribe
from tests.console.conftest import (  # noqa: F401 - the console's fixtures, for the page tests
    csrf_enforced,
    make_staff,
    new_client,
    signed_in,
)


@pytest.fixture
def admin(factory):
    return factory.staff("admin")


@pytest.fixture
def staff_headers(admin, token_for):
    return token_for(admin)


@pytest.fixture
def events():
    """Every event delivered after commit, as ``(name, data, room)``."""
    seen: list[tuple[str, dict, str | None]] = []
    unsubscribe = subscribe(lambda e: seen.append((e.name, e.data, e.room)))
    yield seen
    unsubscribe()


@pytest.fixture
def make_item(client, staff_headers):
    """``make_item(kind, versions={lang: (title, body)}, publish=True, **fields)`` through the
    staff API; returns the item's JSON."""

    def make(kind: str, *, versions=None, publish: bool = True, **fields):
        fields.setdefault("name", f"{kind} item")
        r = client.post(
            "/api/admin/content/items", json={"kind": kind, **fields}, headers=staff_headers
        )
        assert r.status_code == 201, r.get_json()
        item = r.get_json()["data"]
        for lang, (title, body) in (versions or {"en": ("Title", "<p>Body</p>")}).items():
            url = f"/api/admin/content/items/{item['id']}/versions/{lang}"
            r = client.put(url, json={"title": title, "body": body}, headers=staff_headers)
            assert r.status_code == 200, r.get_json()
            if publish:
                r = client.post(url + "/publish", headers=staff_headers)
                assert r.status_code == 200, r.get_json()
        return item

    return make
