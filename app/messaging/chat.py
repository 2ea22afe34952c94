"""Live support chat: a player's conversation with support over Socket.IO, answered from the
console inbox (docs/realtime.md, "Live support chat").

A conversation is a support ticket of channel ``chat``: one open conversation per player (a
new one once staff closed the last), the same statuses, assignment and audit as tickets, so
staff answer chats and tickets from one inbox. The socket events (``chat:open``,
``chat:send``, ``chat:read``, ``chat:history``) are in ``app.realtime.handlers``; this module
holds the rules.

Invariants:
* A message is stored before anyone is told; the pushes go after commit: to the player's
  room (``chat.message``: every device of theirs) and to staff (``support.chat.message`` in
  room ``admin``).
* Moderation before storage (every player message, chat or ticket: ``moderate``): control
  characters, length and the operator's blocked words (setting ``chat_blocked_words``) are
  refused with a 400 that stores nothing; a player sends at most ``chat_messages_per_minute``
  messages a minute across every connection and the HTTP API (429). Staff may hide a stored
  message afterwards (audited): it stays for the record and reads as removed to the player.
* Read marks: each side's newest read message id; unread = the other side's visible messages
  after it. A mark never moves backwards and never past the conversation's last message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.core import audit, events
from app.core.base import utcnow
from app.core.db import atomic
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.identity.models import User
from app.messaging import support
from app.messaging.models import SupportMessage, SupportTicket
from app.messaging.moderation import moderate, throttle

CHAT_SUBJECT = "Live chat"
#: A chat line is shorter than a ticket's message.
MAX_CHAT_MESSAGE = 2000


def conversation_json(t: SupportTicket) -> dict[str, Any]:
    """A player's view of a conversation, with its messages and their unread count."""
    out = support.ticket_json(t, with_messages=True, for_player=True)
    out["unread"] = _unread(t, reader="player")
    return out


def _unread(t: SupportTicket, *, reader: str) -> int:
    mark = (t.player_read_id if reader == "player" else t.staff_read_id) or 0
    other = "staff" if reader == "player" else "player"
    return sum(
        1 for m in t.messages if m.author_kind == other and m.id > mark and m.hidden_at is None
    )


def current(user: User) -> SupportTicket | None:
    """The player's open conversation (not closed), if any."""
    return db.session.scalar(
        select(SupportTicket)
        .where(
            SupportTicket.user_id == user.id,
            SupportTicket.channel == "chat",
            SupportTicket.status != "closed",
        )
        .order_by(SupportTicket.id.desc())
        .limit(1)
    )


def _pushes(ticket: SupportTicket, msg: SupportMessage, username: str, *, new: bool) -> None:
    events.publish(
        "chat.message",
        support.message_json(msg, for_player=True),
        room=events.user_room(ticket.user_id),
    )
    staff_view = {
        **support.message_json(msg),
        "username": username,
        "subject": ticket.subject,
        "assigned_to_id": ticket.assigned_to_id,
        "new_conversation": new,
    }
    events.publish("support.chat.message", staff_view, room="admin")


def send(user: User, message: Any, *, ticket_id: int | None = None) -> SupportMessage:
    """A player's chat line: into ``ticket_id`` (theirs, not closed) or their open
    conversation, opening one when they have none."""
    body = moderate(message, limit=MAX_CHAT_MESSAGE)
    with atomic():
        throttle(user.id)
        new = False
        if ticket_id is not None:
            support.get_for_player(user, ticket_id)
            ticket = support.locked(ticket_id)
            if ticket.status == "closed":
                raise support.closed_for_player()
        else:
            found = current(user)
            if found is not None:
                ticket = support.locked(found.id)
            else:
                new = True
                ticket = SupportTicket(
                    user_id=user.id, subject=CHAT_SUBJECT, channel="chat", status="open"
                )
                db.session.add(ticket)
                db.session.flush()
        ticket.status = "open"
        msg = support.add_message(ticket, user, "player", body)
        ticket.player_read_id = msg.id  # a player has read what they wrote
        _pushes(ticket, msg, user.username, new=new)
    return msg


def history(user: User, ticket_id: int | None = None) -> SupportTicket | None:
    """The player's conversation (``ticket_id``, or the open one)."""
    if ticket_id is not None:
        return support.get_for_player(user, ticket_id)
    return current(user)


def mark_read(reader: User, ticket_id: int, message_id: int, *, side: str) -> SupportTicket:
    """Move ``side``'s read mark up to ``message_id`` (never back, never past the end)."""
    with atomic():
        if side == "player":
            support.get_for_player(reader, ticket_id)
        else:
            support.get(ticket_id)
        ticket = support.locked(ticket_id)
        last = max((m.id for m in ticket.messages), default=0)
        target = min(message_id, last)
        if side == "player":
            ticket.player_read_id = max(ticket.player_read_id or 0, target) or None
        else:
            ticket.staff_read_id = max(ticket.staff_read_id or 0, target) or None
    return ticket


def unread_for_staff(ticket_ids: list[int]) -> dict[int, int]:
    """Per ticket: the player's visible messages staff have not read."""
    if not ticket_ids:
        return {}
    rows = db.session.execute(
        select(SupportMessage.ticket_id, func.count(SupportMessage.id))
        .join(SupportTicket, SupportTicket.id == SupportMessage.ticket_id)
        .where(
            SupportMessage.ticket_id.in_(ticket_ids),
            SupportMessage.author_kind == "player",
            SupportMessage.hidden_at.is_(None),
            SupportMessage.id > func.coalesce(SupportTicket.staff_read_id, 0),
        )
        .group_by(SupportMessage.ticket_id)
    ).all()
    return {ticket_id: int(count) for ticket_id, count in rows}


def conversations_waiting() -> int:
    """Open conversations and tickets with a player message staff have not read (the menu
    badge)."""
    unread = (
        select(SupportMessage.id)
        .where(
            SupportMessage.ticket_id == SupportTicket.id,
            SupportMessage.author_kind == "player",
            SupportMessage.hidden_at.is_(None),
            SupportMessage.id > func.coalesce(SupportTicket.staff_read_id, 0),
        )
        .exists()
    )
    query = select(func.count(SupportTicket.id)).where(SupportTicket.status != "closed", unread)
    return int(db.session.scalar(query) or 0)


def hide(staff: User, message_id: int, reason: str) -> SupportMessage:
    """Moderation after the fact: the message reads as removed to the player (audited)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError.field("reason", "Say why the message is hidden")
    with atomic():
        msg = db.session.get(SupportMessage, message_id)
        if msg is None:
            raise NotFound("Message not found")
        ticket = support.locked(msg.ticket_id)
        if msg.hidden_at is None:
            msg.hidden_at, msg.hidden_by_id = utcnow(), staff.id
            audit.record(
                "support.message_hide",
                actor=staff,
                target_type="support_message",
                target_id=msg.id,
                before={"hidden": False},
                after={"hidden": True, "ticket_id": ticket.id},
                reason=reason[:500],
            )
            hidden = {"ticket_id": ticket.id, "message_id": msg.id}
            events.publish("chat.message.hidden", hidden, room=events.user_room(ticket.user_id))
            events.publish("support.chat.message", {**hidden, "hidden": True}, room="admin")
    return msg
