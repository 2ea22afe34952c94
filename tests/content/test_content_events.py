"""What publishing an announcement and switching maintenance put on the event bus (after
commit, to the right rooms); the live Socket.IO delivery is in test_content_live.py."""

from __future__ import annotations

from datetime import timedelta

from app.bonus import loyalty
from app.bonus.models import LoyaltyAccount
from app.content import editing
from app.content.models import ContentItem
from app.core import opsettings, settings
from app.core.base import utcnow
from app.core.db import atomic
from app.core.extensions import db
from app.messaging import crm


def _announcements(events):
    return [(data, room) for name, data, room in events if name == "content.announcement"]


def test_publishing_an_announcement_for_everyone_goes_to_the_global_room(make_item, events):
    item = make_item("announcement", versions={"en": ("Hello", "<p>hi<script>x()</script></p>")})
    [(data, room)] = _announcements(events)
    assert room == "global"
    assert data["id"] == item["id"]
    assert data["title"] == "Hello"
    assert data["body"] == "<p>hi</p>"


def test_a_segment_announcement_goes_to_each_player_of_the_segment_only(
    make_item, events, factory, admin
):
    german, other_german = factory.player(country="DE"), factory.player(country="DE")
    factory.player(country="MT")
    segment = crm.create_segment("DE", "country = 'DE'", None, admin)
    make_item("announcement", audience="segment", segment_id=segment.id)
    rooms = sorted(room for _data, room in _announcements(events))
    assert rooms == sorted([f"user:{german.id}", f"user:{other_german.id}"])


def test_a_vip_announcement_goes_to_players_at_or_above_the_level(make_item, events, factory):
    bronze, gold, platinum = factory.player(), factory.player(), factory.player()
    with atomic():
        loyalty.ensure_levels()
        for user, level in ((bronze, "bronze"), (gold, "gold"), (platinum, "platinum")):
            db.session.add(LoyaltyAccount(user_id=user.id, points=1, level_code=level))
    make_item("announcement", audience="vip", vip_level="gold")
    rooms = {room for _data, room in _announcements(events)}
    assert rooms == {f"user:{gold.id}", f"user:{platinum.id}"}


def test_an_announcement_outside_its_window_or_a_banner_is_not_pushed(make_item, events):
    make_item("announcement", starts_at=(utcnow() + timedelta(days=1)).isoformat())
    make_item("banner", position="lobby")
    make_item("page", slug="quiet")
    assert _announcements(events) == []


def test_a_refused_publish_pushes_nothing(client, staff_headers, events):
    r = client.post("/api/admin/content/items/999999/versions/en/publish", headers=staff_headers)
    assert r.status_code == 404
    assert _announcements(events) == []


def _maintenance(events):
    return [(data, room) for name, data, room in events if name == "platform.maintenance"]


def test_turning_maintenance_on_and_off_tells_every_socket(admin, events):
    with atomic():
        opsettings.put_many(
            {"maintenance_mode": True, "maintenance_message": "Back at 6"}, actor=admin
        )
    assert _maintenance(events) == [({"enabled": True, "message": "Back at 6"}, "global")]
    with atomic():
        opsettings.put_many({"maintenance_mode": True}, actor=admin)  # unchanged: quiet
    with atomic():
        settings.set_maintenance(False, actor=admin)  # the CLI's path
    assert _maintenance(events)[-1] == ({"enabled": False, "message": None}, "global")
    assert len(_maintenance(events)) == 2


def test_a_rolled_back_maintenance_switch_pushes_nothing(admin, events):
    try:
        with atomic():
            settings.set_maintenance(True, message="never", actor=admin)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    assert _maintenance(events) == []


def test_an_announcement_published_ahead_is_pushed_once_when_its_window_opens(
    client, make_item, staff_headers, events
):
    later = utcnow() + timedelta(hours=2)
    item = make_item("announcement", starts_at=later.isoformat())
    assert _announcements(events) == []
    assert editing.push_due_announcements() == 0  # not yet
    assert editing.push_due_announcements(now=later + timedelta(minutes=1)) == 1
    [(data, room)] = _announcements(events)
    assert (data["id"], room) == (item["id"], "global")
    assert editing.push_due_announcements(now=later + timedelta(minutes=2)) == 0  # once
    # Publishing again (a new text) makes it due again; inside the window it goes at once.
    r = client.patch(
        f"/api/admin/content/items/{item['id']}",
        json={"starts_at": (utcnow() - timedelta(minutes=1)).isoformat()},
        headers=staff_headers,
    )
    assert r.status_code == 200
    url = f"/api/admin/content/items/{item['id']}/versions/en/publish"
    assert client.post(url, headers=staff_headers).status_code == 200
    assert len(_announcements(events)) == 2
    assert editing.push_due_announcements() == 0


def test_an_announcement_whose_window_closed_unseen_is_never_pushed(make_item, events):
    start = utcnow() + timedelta(hours=1)
    make_item(
        "announcement",
        starts_at=start.isoformat(),
        ends_at=(start + timedelta(hours=1)).isoformat(),
    )
    assert editing.push_due_announcements(now=start + timedelta(hours=3)) == 0
    assert _announcements(events) == []


def test_a_queued_fan_out_of_a_copy_since_unpublished_or_replaced_sends_nothing(
    client, make_item, staff_headers, factory, admin, events
):
    factory.player(country="DE")
    segment = crm.create_segment("DE only", "country = 'DE'", None, admin)
    item = make_item("announcement", audience="segment", segment_id=segment.id)
    version = db.session.get_one(ContentItem, item["id"]).versions[0]
    first = version.published_at.isoformat()
    assert len(_announcements(events)) == 1
    url = f"/api/admin/content/items/{item['id']}/versions/en"
    assert client.post(url + "/publish", headers=staff_headers).status_code == 200
    assert len(_announcements(events)) == 2
    assert editing.fan_out_announcement(version.id, first) == 0  # replaced since
    assert client.post(url + "/unpublish", headers=staff_headers).status_code == 200
    db.session.expire_all()
    assert editing.fan_out_announcement(version.id, version.published_at or first) == 0
    assert editing.fan_out_announcement(10**12, first) == 0
    assert len(_announcements(events)) == 2
