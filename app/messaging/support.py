"""Support tickets: players open and answer tickets, staff answer, assign and close them.

Invariants:
* A player sees and writes only their own tickets (someone else's is NOT_FOUND, never 403:
  ids are not an oracle). A closed ticket takes no more messages.
* Every message is persisted on the ticket before anyone is told; the pushes go after commit:
  ``support.ticket.new`` (and ``admin.notification`` for replies) to room ``admin``,
  ``chat.message`` plus a stored notification to the player's room.
* Staff actions (reply, assign, close) are audited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.core import audit, events, notifications
from app.core.base import utcnow
from app.core.db import atomic, page_of
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.identity.models import User
from app.messaging.models import SupportMessage, SupportTicket
from app.messaging.moderation import MAX_BODY, moderate, throttle


def _staff_body(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError.field("message", "Write a message")
    if len(text) > MAX_BODY:
        raise ValidationError.field("message", f"At most {MAX_BODY} characters")
    return text


def closed_for_player() -> Conflict:
    return Conflict("This ticket is closed; please open a new one")


def locked(ticket_id: int) -> SupportTicket:
    # Callers have just read the ticket by id; a missing row raises NoResultFound.
    stmt = (
        select(SupportTicket)
        .where(SupportTicket.id == ticket_id)
        .with_for_update(of=SupportTicket)
        .execution_options(populate_existing=True)
    )
    return db.session.execute(stmt).scalar_one()


def message_json(m: SupportMessage, *, for_player: bool = False) -> dict[str, Any]:
    """A message; a player never reads the text of one hidden by moderation."""
    hidden = m.hidden_at is not None
    return {
        "id": m.id,
        "ticket_id": m.ticket_id,
        "author_id": m.author_id,
        "author": m.author_kind,
        "message": "" if hidden and for_player else m.body,
        "hidden": hidden,
        "created_at": m.created_at.isoformat(),
    }


def ticket_json(
    t: SupportTicket, *, with_messages: bool = False, for_player: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": t.id,
        "user_id": t.user_id,
        "subject": t.subject,
        "category": t.category,
        "priority": t.priority,
        "status": t.status,
        "assigned_to_id": t.assigned_to_id,
        "created_at": t.created_at.isoformat(),
        "last_message_at": t.last_message_at.isoformat(),
        "closed_at": t.closed_at.isoformat() if t.closed_at else None,
        "messages_count": len(t.messages),
        "channel": t.channel,
    }
    if with_messages:
        out["messages"] = [message_json(m, for_player=for_player) for m in t.messages]
    return out


def add_message(ticket: SupportTicket, author: User, kind: str, body: str) -> SupportMessage:
    now = utcnow()
    msg = SupportMessage(
        ticket_id=ticket.id, author_id=author.id, author_kind=kind, body=body, created_at=now
    )
    db.session.add(msg)
    ticket.last_message_at = now
    db.session.flush()  # the message id goes into the pushes
    db.session.refresh(ticket, ["messages"])
    return msg


def open_ticket(
    user: User, *, subject: str, message: str, category: str = "other", priority: str = "normal"
) -> SupportTicket:
    subject = (subject or "").strip()
    if not subject:
        raise ValidationError.field("subject", "Give the ticket a subject")
    body = moderate(message)
    with atomic():
        throttle(user.id)
        ticket = SupportTicket(
            user_id=user.id,
            subject=subject[:200],
            category=category,
            priority=priority,
            status="open",
        )
        db.session.add(ticket)
        db.session.flush()
        msg = add_message(ticket, user, "player", body)
        ticket.player_read_id = msg.id
        events.publish(
            "support.ticket.new",
            {**ticket_json(ticket), "username": user.username, "message": body[:500]},
            room="admin",
        )
    return ticket


def list_for_player(user: User, page: int, limit: int) -> tuple[list[SupportTicket], int]:
    return _page(select(SupportTicket).where(SupportTicket.user_id == user.id), page, limit)


def get_for_player(user: User, ticket_id: int) -> SupportTicket:
    ticket = db.session.get(SupportTicket, ticket_id)
    if ticket is None or ticket.user_id != user.id:
        raise NotFound("Ticket not found")
    return ticket


def player_reply(user: User, ticket_id: int, message: str) -> SupportMessage:
    body = moderate(message)
    with atomic():
        throttle(user.id)
        get_for_player(user, ticket_id)
        ticket = locked(ticket_id)
        if ticket.status == "closed":
            raise closed_for_player()
        ticket.status = "open"
        msg = add_message(ticket, user, "player", body)
        ticket.player_read_id = msg.id
        events.publish(
            "admin.notification",
            {"type": "support_reply", "ticket_id": ticket.id, "user_id": user.id,
             "assigned_to_id": ticket.assigned_to_id, "message": body[:500]},
            room="admin",
        )  # fmt: skip
    return msg


# --- staff -----------------------------------------------------------------------------------


def _page(stmt, page: int, limit: int):
    return page_of(
        stmt, SupportTicket.last_message_at.desc(), SupportTicket.id.desc(), page=page, limit=limit
    )


def list_for_staff(
    *,
    status: str | None,
    assigned_to_id: int | None,
    user_id: int | None,
    page: int,
    limit: int,
) -> tuple[list[SupportTicket], int]:
    stmt = select(SupportTicket)
    if status:
        stmt = stmt.where(SupportTicket.status == status)
    if assigned_to_id is not None:
        stmt = stmt.where(SupportTicket.assigned_to_id == assigned_to_id)
    if user_id is not None:
        stmt = stmt.where(SupportTicket.user_id == user_id)
    return _page(stmt, page, limit)


def get(ticket_id: int) -> SupportTicket:
    ticket = db.session.get(SupportTicket, ticket_id)
    if ticket is None:
        raise NotFound("Ticket not found")
    return ticket


def staff_reply(staff: User, ticket_id: int, message: str) -> SupportMessage:
    body = _staff_body(message)
    with atomic():
        get(ticket_id)
        ticket = locked(ticket_id)
        if ticket.status == "closed":
            raise Conflict("This ticket is closed")
        ticket.status = "answered"
        if ticket.assigned_to_id is None:
            ticket.assigned_to_id = staff.id
        msg = add_message(ticket, staff, "staff", body)
        ticket.staff_read_id = msg.id  # staff answered having read the conversation
        audit.record("support.reply", actor=staff, target_type="support_ticket",
                     target_id=ticket.id, after={"message_id": msg.id})  # fmt: skip
        events.publish(
            "chat.message",
            message_json(msg, for_player=True),
            room=events.user_room(ticket.user_id),
        )
        events.publish(
            "support.chat.message",
            {**message_json(msg), "assigned_to_id": ticket.assigned_to_id},
            room="admin",
        )
        notifications.notify(
            ticket.user_id, "support_reply", f"Re: {ticket.subject}", body[:500],
            data={"ticket_id": ticket.id}, dedupe_key=f"support_reply:{msg.id}",
        )  # fmt: skip
    return msg


def assign(staff: User, ticket_id: int, assignee_id: int) -> SupportTicket:
    assignee = db.session.get(User, assignee_id)
    if assignee is None or not assignee.is_staff or not assignee.can("support.manage"):
        raise ValidationError.field("staff_id", "Assign the ticket to a support staff member")
    with atomic():
        get(ticket_id)
        ticket = locked(ticket_id)
        before = ticket.assigned_to_id
        ticket.assigned_to_id = assignee.id
        audit.record("support.assign", actor=staff, target_type="support_ticket",
                     target_id=ticket.id, before={"assigned_to_id": before},
                     after={"assigned_to_id": assignee.id})  # fmt: skip
        events.publish(
            "admin.notification",
            {"type": "support_assigned", "ticket_id": ticket.id, "assigned_to_id": assignee.id},
            room="admin",
        )
    return ticket


def close(staff: User, ticket_id: int) -> SupportTicket:
    with atomic():
        get(ticket_id)
        ticket = locked(ticket_id)
        if ticket.status == "closed":
            return ticket  # closing twice is closing once
        before = ticket.status
        ticket.status, ticket.closed_at, ticket.closed_by_id = "closed", utcnow(), staff.id
        audit.record("support.close", actor=staff, target_type="support_ticket",
                     target_id=ticket.id, before={"status": before},
                     after={"status": "closed"})  # fmt: skip
        events.publish(
            "chat.message",
            {"ticket_id": ticket.id, "author": "system", "message": "Ticket closed",
             "status": "closed"},
            room=events.user_room(ticket.user_id),
        )  # fmt: skip
    return ticket
