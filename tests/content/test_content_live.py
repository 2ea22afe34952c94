"""Real time, end to end: real python-socketio clients connected to a live server receive
``content.announcement`` when staff publish an announcement for them (and only then), and
``platform.maintenance`` when maintenance is switched on."""

from __future__ import annotations

import time

import pytest
import requests
from flask_jwt_extended import create_access_token

from app.core import settings
from app.core.db import atomic
from app.messaging import crm
from tests.console.test_console_browser import live_server  # noqa: F401 - the fixture
from tests.realtime.test_realtime_live import Probe

pytestmark = pytest.mark.slow


@pytest.fixture
def probes():
    made: list[Probe] = []

    def make(url: str, user) -> Probe:
        probe = Probe()
        made.append(probe)
        token = create_access_token(identity=user)
        # The in-process threaded test server speaks Engine.IO long-polling.
        probe.connect(url, auth={"token": token}, transports=["polling"])
        return probe

    yield make
    for probe in made:
        probe.close()


def _publish(base: str, headers: dict, **fields) -> int:
    r = requests.post(f"{base}/api/admin/content/items", json=fields, headers=headers, timeout=10)
    assert r.status_code == 201, r.text
    item_id = r.json()["data"]["id"]
    url = f"{base}/api/admin/content/items/{item_id}/versions/en"
    body = {"title": f"News {item_id}", "body": "<p>Big news</p><script>x()</script>"}
    assert requests.put(url, json=body, headers=headers, timeout=10).status_code == 200
    assert requests.post(url + "/publish", headers=headers, timeout=10).status_code == 200
    return item_id


def _announcement(probe: Probe, item_id: int, timeout: float = 15) -> dict:
    """The ``content.announcement`` of ``item_id`` (waits on the probe's condition)."""
    deadline = time.monotonic() + timeout
    with probe._cond:
        while True:
            for event, data in probe.events:
                if event == "content.announcement" and data.get("id") == item_id:
                    return data
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no announcement {item_id}; got {probe.events}")
            probe._cond.wait(left)


def _ids(probe: Probe) -> list[int]:
    with probe._cond:
        return [d["id"] for e, d in probe.events if e == "content.announcement"]


def test_publishing_an_announcement_reaches_the_players_it_targets(
    app,
    live_server,  # noqa: F811 - the fixture imported above
    factory,
    token_for,
    probes,
):
    admin = factory.staff("admin")
    german = factory.player(country="DE")
    maltese = factory.player(country="MT")
    segment = crm.create_segment("Germany", "country = 'DE'", None, admin)
    headers = token_for(admin)
    german_socket = probes(live_server, german)
    maltese_socket = probes(live_server, maltese)

    everyone = _publish(live_server, headers, kind="announcement", name="For all")
    for socket in (german_socket, maltese_socket):
        data = _announcement(socket, everyone)
        assert data["body"] == "<p>Big news</p>"  # sanitised on save

    targeted = _publish(
        live_server, headers, kind="announcement", name="DE", audience="segment",
        segment_id=segment.id,
    )  # fmt: skip
    assert _announcement(german_socket, targeted)["title"] == f"News {targeted}"
    # Events reach a socket in publish order: once a later one for everyone has arrived,
    # the segment's announcement would have arrived before it if it had been sent.
    later = _publish(live_server, headers, kind="announcement", name="Later, for all")
    _announcement(maltese_socket, later)
    _announcement(german_socket, later)
    assert _ids(maltese_socket) == [everyone, later]
    assert _ids(german_socket) == [everyone, targeted, later]


def test_turning_maintenance_on_tells_every_connected_player(
    app,
    live_server,  # noqa: F811 - the fixture imported above
    factory,
    probes,
):
    sockets = [probes(live_server, factory.player()) for _ in range(2)]
    try:
        with atomic():
            settings.set_maintenance(True, message="Upgrading the wallet")
        for socket in sockets:
            data = socket.wait_for("platform.maintenance")
            assert data == {"enabled": True, "message": "Upgrading the wallet"}
    finally:
        with atomic():
            settings.set_maintenance(False)
