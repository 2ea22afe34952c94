"""Live support chat over a real Socket.IO server: a player writes, staff hear it in the admin
room, the answer (from another process, as the console sends it) reaches the player, and the
refusals come back as error payloads with nothing stored."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app.core import opsettings
from app.core.db import atomic
from app.core.extensions import db
from app.messaging.models import SupportMessage, SupportTicket
from tests.realtime.test_realtime_live import live, mint, probes  # noqa: F401 - fixtures

pytestmark = pytest.mark.slow


def _call(probe, event: str, data=None):
    return probe.sio.call(event, data, timeout=10)


def _wait_for(probe, name: str, wanted, timeout: float = 15):
    """The first ``name`` event whose data satisfies ``wanted``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event, data in list(probe.events):
            if event == name and wanted(data):
                return data
        time.sleep(0.05)
    raise AssertionError(f"no matching {name!r} within {timeout}s; got {probe.events}")


def test_a_player_chats_staff_hear_it_and_the_answer_comes_back(
    live,  # noqa: F811 - the fixture imported above
    committed_db,
    factory,
    mint,  # noqa: F811
    probes,  # noqa: F811
):
    player, agent = factory.player(), factory.staff("support")
    me, staff = probes(), probes()
    me.connect(live.url, auth={"token": mint(player)})
    staff.connect(live.url, auth={"token": mint(agent)})

    assert _call(me, "chat:history") == {"success": True, "conversation": None}
    ack = _call(me, "chat:send", {"message": "Where is my withdrawal?"})
    assert ack["success"] is True
    line = ack["message"]
    assert line["author"] == "player"
    heard = staff.wait_for("support.chat.message")
    assert heard["ticket_id"] == line["ticket_id"]
    assert heard["username"] == player.username
    assert heard["new_conversation"] is True
    assert me.wait_for("chat.message")["id"] == line["id"]  # echoed to the player's devices

    live.run_python(
        "from app import create_app\n"
        "from app.identity.models import User\n"
        "from app.core.extensions import db\n"
        "from app.messaging import support\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        f"    agent = db.session.get(User, {agent.id})\n"
        f"    support.staff_reply(agent, {line['ticket_id']}, 'It is on its way')\n"
    )
    answer = _wait_for(me, "chat.message", lambda data: data["author"] == "staff")
    assert answer["author"] == "staff"
    assert answer["message"] == "It is on its way"

    history = _call(me, "chat:history")["conversation"]
    assert history["unread"] == 1
    assert [m["message"] for m in history["messages"]] == [
        "Where is my withdrawal?",
        "It is on its way",
    ]
    read = _call(me, "chat:read", {"ticket_id": line["ticket_id"], "message_id": answer["id"]})
    assert read == {"success": True, "unread": 0}


def test_refusals_are_error_payloads_and_store_nothing(
    live,  # noqa: F811
    committed_db,
    factory,
    mint,  # noqa: F811
    probes,  # noqa: F811
):
    with atomic():
        opsettings.put_many(
            {"chat_blocked_words": ["scam"], "chat_messages_per_minute": 2}, actor=None
        )
    player, other, agent = factory.player(), factory.player(), factory.staff("support")
    me, them, staff = probes(), probes(), probes()
    me.connect(live.url, auth={"token": mint(player)})
    them.connect(live.url, auth={"token": mint(other)})
    staff.connect(live.url, auth={"token": mint(agent)})

    def refused(probe, event, data, code):
        answer = _call(probe, event, data)
        assert answer["success"] is False, answer
        assert answer["code"] == code, answer
        return answer["message"]

    assert "control" in refused(me, "chat:send", {"message": "a\x00b"}, "invalid_payload")
    assert "not allowed" in refused(me, "chat:send", {"message": "total scam"}, "invalid_payload")
    refused(me, "chat:send", {"message": "x", "ticket_id": "1; DROP"}, "invalid_payload")
    refused(me, "chat:send", "not an object", "invalid_payload")
    refused(staff, "chat:send", {"message": "staff use the console"}, "access_denied")
    first = _call(me, "chat:send", {"message": "one"})["message"]
    refused(them, "chat:send", {"message": "in", "ticket_id": first["ticket_id"]}, "not_found")
    refused(them, "chat:history", {"ticket_id": first["ticket_id"]}, "not_found")
    _call(me, "chat:send", {"message": "two"})
    assert "2 messages a minute" in refused(me, "chat:send", {"message": "three"}, "rate_limited")

    db.session.expire_all()
    stored = db.session.scalars(select(SupportMessage.body).order_by(SupportMessage.id)).all()
    assert stored == ["one", "two"]
    assert db.session.scalar(select(SupportTicket.channel)) == "chat"
