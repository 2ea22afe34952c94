"""Support tickets: players talk to staff; each side sees and does only what it may."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core.bus import subscribe
from app.core.extensions import db
from app.core.models import AuditLog, Notification


@pytest.fixture
def events():
    seen = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


def open_ticket(client, headers, subject="Deposit missing", message="I paid 50 EUR"):
    response = client.post(
        "/api/support/tickets",
        headers=headers,
        json={"subject": subject, "message": message, "category": "payments"},
    )
    assert response.status_code == 201, response.json
    return response.json["data"]


def test_a_new_ticket_reaches_staff_and_the_answer_reaches_the_player(
    client, factory, token_for, events
):
    player = factory.player()
    headers = token_for(player)
    ticket = open_ticket(client, headers)
    assert ticket["status"] == "open"
    assert [m["message"] for m in ticket["messages"]] == ["I paid 50 EUR"]
    (new,) = [e for e in events if e.name == "support.ticket.new"]
    assert new.room == "admin"
    assert new.data["id"] == ticket["id"]

    agent = factory.staff("support")
    staff = token_for(agent)
    queue = client.get("/api/admin/support/tickets?status=open", headers=staff).json
    assert [t["id"] for t in queue["data"]] == [ticket["id"]]
    answer = client.post(
        f"/api/admin/support/tickets/{ticket['id']}/reply",
        headers=staff,
        json={"message": "Found it, credited now"},
    )
    assert answer.status_code == 201, answer.json
    (chat,) = [e for e in events if e.name == "chat.message"]
    assert chat.room == f"user:{player.id}"
    assert chat.data["message"] == "Found it, credited now"
    assert db.session.scalar(
        select(Notification.id).where(
            Notification.user_id == player.id, Notification.type == "support_reply"
        )
    )
    mine = client.get(f"/api/support/tickets/{ticket['id']}", headers=headers).json["data"]
    assert mine["status"] == "answered"
    assert mine["assigned_to_id"] == agent.id
    assert [m["author"] for m in mine["messages"]] == ["player", "staff"]

    reply = client.post(
        f"/api/support/tickets/{ticket['id']}/reply", headers=headers, json={"message": "Thanks!"}
    )
    assert reply.status_code == 201
    assert client.get("/api/support/tickets", headers=headers).json["data"][0]["status"] == "open"


def test_a_player_cannot_read_or_answer_someone_elses_ticket(client, factory, token_for):
    owner, other = factory.player(), factory.player()
    ticket = open_ticket(client, token_for(owner))
    intruder = token_for(other)
    assert client.get(f"/api/support/tickets/{ticket['id']}", headers=intruder).status_code == 404
    sneaky = client.post(
        f"/api/support/tickets/{ticket['id']}/reply", headers=intruder, json={"message": "hi"}
    )
    assert sneaky.status_code == 404
    assert client.get("/api/support/tickets", headers=intruder).json["meta"]["total"] == 0
    # Players never reach the staff queue.
    assert client.get("/api/admin/support/tickets", headers=intruder).status_code == 403


def test_staff_assign_and_close_and_a_closed_ticket_takes_no_more_messages(
    client, factory, token_for
):
    player = factory.player()
    headers = token_for(player)
    ticket = open_ticket(client, headers)
    manager = token_for(factory.staff("manager"))
    helper = factory.staff("support")
    not_support = factory.staff("agent")
    url = f"/api/admin/support/tickets/{ticket['id']}"
    refused = client.post(f"{url}/assign", headers=manager, json={"staff_id": not_support.id})
    assert refused.status_code == 400
    assigned = client.post(f"{url}/assign", headers=manager, json={"staff_id": helper.id})
    assert assigned.json["data"]["assigned_to_id"] == helper.id
    mine = client.get(f"/api/admin/support/tickets?assigned_to={helper.id}", headers=manager)
    assert mine.json["meta"]["total"] == 1
    assert client.post(f"{url}/close", headers=manager).json["data"]["status"] == "closed"
    late = client.post(
        f"/api/support/tickets/{ticket['id']}/reply", headers=headers, json={"message": "wait"}
    )
    assert late.status_code == 409
    assert client.post(f"{url}/reply", headers=manager, json={"message": "x"}).status_code == 409
    detail = client.get(url, headers=manager).json["data"]
    assert len(detail["messages"]) == 1
    actions = set(
        db.session.scalars(
            select(AuditLog.action).where(AuditLog.target_type == "support_ticket")
        ).all()
    )
    assert actions == {"support.assign", "support.close"}


def test_empty_messages_are_refused(client, factory, token_for):
    headers = token_for(factory.player())
    blank = client.post(
        "/api/support/tickets", headers=headers, json={"subject": "x", "message": "   "}
    )
    assert blank.status_code == 400
    assert blank.json["errors"][0]["field"] == "message"
