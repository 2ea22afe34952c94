"""Live support chat rules (app.messaging.chat): one open conversation per player, pushes
after commit, read marks, moderation before storage, a per-player rate, hiding after the fact."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.core import opsettings
from app.core.bus import subscribe
from app.core.db import atomic
from app.core.errors import Conflict, NotFound, RateLimited, ValidationError
from app.core.extensions import db
from app.core.models import AuditLog
from app.messaging import chat, support
from app.messaging.models import SupportMessage, SupportTicket


@pytest.fixture
def events():
    seen = []
    unsubscribe = subscribe(seen.append)
    yield seen
    unsubscribe()


def _set(**values) -> None:
    with atomic():
        opsettings.put_many(values, actor=None)


def _messages() -> int:
    return len(db.session.scalars(select(SupportMessage)).all())


def test_a_first_line_opens_a_conversation_and_the_next_ones_join_it(factory, events):
    player = factory.player()
    first = chat.send(player, "  Hello, my deposit is missing  ")
    second = chat.send(player, "It was 50 EUR")
    assert first.ticket_id == second.ticket_id
    ticket = db.session.get(SupportTicket, first.ticket_id)
    assert (ticket.channel, ticket.status, ticket.subject) == ("chat", "open", "Live chat")
    assert [m.body for m in ticket.messages] == ["Hello, my deposit is missing", "It was 50 EUR"]
    assert ticket.player_read_id == second.id  # a player has read what they wrote

    staff_side = [e for e in events if e.name == "support.chat.message"]
    assert [e.room for e in staff_side] == ["admin", "admin"]
    assert [e.data["new_conversation"] for e in staff_side] == [True, False]
    assert staff_side[0].data["username"] == player.username
    mine = [e for e in events if e.name == "chat.message"]
    assert {e.room for e in mine} == {f"user:{player.id}"}  # every device of theirs


def test_a_staff_answer_is_unread_until_the_player_reads_it(factory, events):
    player, agent = factory.player(), factory.staff("support")
    line = chat.send(player, "Hi")
    ticket = db.session.get(SupportTicket, line.ticket_id)
    assert chat.unread_for_staff([ticket.id]) == {ticket.id: 1}
    assert chat.conversations_waiting() == 1
    answer = support.staff_reply(agent, ticket.id, "Hello, looking at it")
    db.session.expire_all()
    ticket = db.session.get(SupportTicket, line.ticket_id)
    assert ticket.assigned_to_id == agent.id
    assert chat.unread_for_staff([ticket.id]) == {}  # answering reads the conversation
    assert chat.conversations_waiting() == 0
    assert chat.conversation_json(ticket)["unread"] == 1
    pushed = [e for e in events if e.name == "chat.message" and e.data["author"] == "staff"]
    assert pushed[0].room == f"user:{player.id}"
    assert pushed[0].data["message"] == "Hello, looking at it"

    ticket = chat.mark_read(player, ticket.id, answer.id + 1000, side="player")
    assert ticket.player_read_id == answer.id  # never past the last message
    ticket = chat.mark_read(player, ticket.id, line.id, side="player")
    assert ticket.player_read_id == answer.id  # never backwards
    assert chat.conversation_json(ticket)["unread"] == 0


def test_a_closed_conversation_is_not_reopened_by_the_next_line(factory):
    player, agent = factory.player(), factory.staff("support")
    first = chat.send(player, "Hi")
    support.close(agent, first.ticket_id)
    again = chat.send(player, "One more thing")
    assert again.ticket_id != first.ticket_id
    with pytest.raises(Conflict):
        chat.send(player, "Into the closed one", ticket_id=first.ticket_id)


def test_another_players_conversation_is_not_found(factory):
    owner, other = factory.player(), factory.player()
    line = chat.send(owner, "Mine")
    with pytest.raises(NotFound):
        chat.send(other, "Let me in", ticket_id=line.ticket_id)
    with pytest.raises(NotFound):
        chat.history(other, line.ticket_id)
    with pytest.raises(NotFound):
        chat.mark_read(other, line.ticket_id, line.id, side="player")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Write a message"),
        ("   ", "Write a message"),
        (None, "Write a message"),
        (42, "Write a message"),
        ({"message": "x"}, "Write a message"),
        ("hi\x00there", "control characters"),
        ("bell\x07", "control characters"),
        ("x" * 2001, "At most 2000 characters"),
        ("You SCAM artists", "not allowed"),
    ],
)
def test_moderation_refuses_before_anything_is_stored(factory, text, message):
    _set(chat_blocked_words=["scam"])
    player = factory.player()
    with pytest.raises(ValidationError) as refused:
        chat.send(player, text)
    assert message in str(refused.value.errors)
    assert _messages() == 0


def test_a_blocked_word_matches_whole_words_only(factory):
    _set(chat_blocked_words=["scam"])
    line = chat.send(factory.player(), "Is this a scammer-proof site? scamp is my dog")
    assert line.body.startswith("Is this")


def test_the_rate_counts_every_player_message_chat_and_tickets(factory, client, token_for):
    _set(chat_messages_per_minute=3)
    player = factory.player()
    chat.send(player, "one")
    chat.send(player, "two")
    headers = token_for(player)
    over_http = client.post(
        "/api/support/tickets",
        headers=headers,
        json={"subject": "Help", "message": "three"},
    )
    assert over_http.status_code == 201
    with pytest.raises(RateLimited):
        chat.send(player, "four")
    refused = client.post(
        "/api/support/tickets", headers=headers, json={"subject": "Again", "message": "five"}
    )
    assert refused.status_code == 429
    assert refused.json["code"] == "RATE_LIMITED"
    assert _messages() == 3
    chat.send(factory.player(), "another player is not limited by this one")


def test_hiding_a_message_keeps_it_for_the_record_and_blanks_it_for_the_player(
    factory, client, token_for, events
):
    player, agent = factory.player(), factory.staff("support")
    line = chat.send(player, "my card number is 4111 1111 1111 1111")
    with pytest.raises(ValidationError):
        chat.hide(agent, line.id, "  ")
    chat.hide(agent, line.id, "Card number in chat")
    chat.hide(agent, line.id, "twice is once")
    db.session.expire_all()
    stored = db.session.get(SupportMessage, line.id)
    assert stored.body.startswith("my card number")  # kept for the record
    [row] = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "support.message_hide")
    ).all()
    assert (row.actor_id, row.target_id, row.reason) == (
        agent.id,
        str(line.id),
        "Card number in chat",
    )
    [pushed] = [e for e in events if e.name == "chat.message.hidden"]
    assert pushed.room == f"user:{player.id}"
    assert pushed.data == {"ticket_id": line.ticket_id, "message_id": line.id}

    mine = client.get(f"/api/support/tickets/{line.ticket_id}", headers=token_for(player)).json
    assert mine["data"]["channel"] == "chat"
    assert mine["data"]["messages"][0] | {"created_at": None} == {
        "id": line.id,
        "ticket_id": line.ticket_id,
        "author_id": player.id,
        "author": "player",
        "message": "",
        "hidden": True,
        "created_at": None,
    }
    staff = client.get(
        f"/api/admin/support/tickets/{line.ticket_id}", headers=token_for(agent)
    ).json
    assert staff["data"]["messages"][0]["message"].startswith("my card number")
    assert chat.unread_for_staff([line.ticket_id]) == {}  # a hidden line waits for no one
