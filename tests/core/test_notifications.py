"""Notifications: stored, pushed after commit, deduplicated, readable only by their owner."""

from __future__ import annotations

import pytest

from app.core import notifications
from app.core.bus import subscribe
from app.core.db import atomic
from app.core.models import Notification


@pytest.fixture
def pushed():
    seen = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


def test_a_notification_is_pushed_to_its_user_room_only_after_commit(factory, pushed):
    player = factory.player()
    with atomic():
        notifications.notify(player.id, "promotion", "New Bonus!", "20 Free Spins")
        assert pushed == []
    assert [(e.name, e.room) for e in pushed] == [("notification", f"user:{player.id}")]
    payload = pushed[0].data
    assert payload["type"] == "promotion"
    assert payload["title"] == "New Bonus!"
    assert payload["read"] is False
    assert payload["timestamp"]


def test_a_rolled_back_notification_is_neither_stored_nor_pushed(factory, pushed):
    player = factory.player()
    with pytest.raises(RuntimeError), atomic():
        notifications.notify(player.id, "system", "Hi", "there")
        raise RuntimeError("business failure")
    assert pushed == []
    assert notifications.unread_count(player.id) == 0


def test_the_notification_job_run_twice_stores_and_pushes_once(factory, pushed):
    from app.core.jobs import send_notification

    player = factory.player()
    first = send_notification(player.id, "withdrawal", "Paid", "50.00 EUR", None, "wd-9-paid")
    second = send_notification(player.id, "withdrawal", "Paid", "50.00 EUR", None, "wd-9-paid")
    assert first is not None
    assert second is None
    assert notifications.unread_count(player.id) == 1
    assert len([e for e in pushed if e.name == "notification"]) == 1


def test_the_inbox_is_paginated_newest_first_with_unread_filter(client, factory, token_for):
    player = factory.player()
    with atomic():
        for n in range(5):
            notifications.notify(player.id, "system", f"n{n}", "text")
    headers = token_for(player)
    page = client.get("/api/notifications?page=1&limit=2", headers=headers).get_json()
    assert page["success"] is True
    assert [n["title"] for n in page["data"]] == ["n4", "n3"]
    assert page["meta"] == {"page": 1, "limit": 2, "total": 5}

    first_id = page["data"][0]["id"]
    read = client.post(f"/api/notifications/{first_id}/read", headers=headers).get_json()
    assert read["data"]["read"] is True
    unread = client.get("/api/notifications?unread=true&limit=50", headers=headers).get_json()
    assert unread["meta"]["total"] == 4
    count = client.get("/api/notifications/unread-count", headers=headers).get_json()
    assert count["data"] == {"count": 4}

    done = client.post("/api/notifications/read-all", headers=headers).get_json()
    assert done["data"] == {"updated": 4}
    count = client.get("/api/notifications/unread-count", headers=headers).get_json()
    assert count["data"] == {"count": 0}


def test_a_user_cannot_read_or_mark_another_users_notification(client, factory, token_for):
    owner, intruder = factory.player(), factory.player()
    with atomic():
        note = notifications.notify(owner.id, "system", "Private", "for the owner")
    response = client.post(f"/api/notifications/{note.id}/read", headers=token_for(intruder))
    assert response.status_code == 404
    assert response.get_json()["code"] == "NOT_FOUND"
    listed = client.get("/api/notifications", headers=token_for(intruder)).get_json()
    assert listed["data"] == []
    from app.core.extensions import db

    assert db.session.get(Notification, note.id).read_at is None


def test_the_inbox_needs_a_token(client):
    response = client.get("/api/notifications")
    assert response.status_code == 401
    assert response.get_json()["code"] == "AUTHENTICATION_ERROR"
