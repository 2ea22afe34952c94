"""Support inbox: tickets and live chats in one queue, with unread counts and assignment."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.console.core import bp, console_view, is_htmx
from app.blueprints.console.listing import paginate
from app.core.errors import AppError
from app.core.extensions import db
from app.core.i18n import N_
from app.identity.models import STAFF_ROLES, User
from app.messaging import chat, support
from app.messaging.models import TICKET_CHANNELS, TICKET_STATUSES, SupportTicket

SORTABLE = {
    "id": SupportTicket.id,
    "status": SupportTicket.status,
    "last_message": SupportTicket.last_message_at,
}
ASSIGNED = ("me", "unassigned", "anyone")


@bp.get("/support")
@console_view("support.manage")
def support_inbox():
    status = request.args.get("status", "waiting")
    channel = request.args.get("channel", "")
    assigned = request.args.get("assigned", "anyone")
    query = select(SupportTicket)
    if status == "waiting":
        query = query.where(SupportTicket.status != "closed")
    elif status in TICKET_STATUSES:
        query = query.where(SupportTicket.status == status)
    if channel in TICKET_CHANNELS:
        query = query.where(SupportTicket.channel == channel)
    if assigned == "me":
        query = query.where(SupportTicket.assigned_to_id == current_user.id)
    elif assigned == "unassigned":
        query = query.where(SupportTicket.assigned_to_id.is_(None))
    listing = paginate(
        query,
        sortable=SORTABLE,
        default_sort="last_message",
        filters={"status": status, "channel": channel, "assigned": assigned},
        tiebreak=SupportTicket.id,
    )
    ids = [t.id for t in listing.items]
    players = _names(
        {*(t.user_id for t in listing.items), *(t.assigned_to_id for t in listing.items)}
    )
    return render_template(
        "console/support/inbox.html",
        listing=listing,
        unread=chat.unread_for_staff(ids),
        names=players,
        statuses=TICKET_STATUSES,
        channels=TICKET_CHANNELS,
        assigned_choices=ASSIGNED,
        filters={"status": status, "channel": channel, "assigned": assigned},
    )


@bp.get("/support/<int:ticket_id>")
@console_view("support.manage")
def support_conversation(ticket_id: int):
    ticket = db.session.get(SupportTicket, ticket_id)
    if ticket is None:
        abort(404)
    return _conversation_page(ticket)


def _conversation_page(ticket: SupportTicket, error: str | None = None, status: int = 200):
    staff = db.session.scalars(
        select(User).where(User.role_id.in_(STAFF_ROLES), User.status == "active")
    ).all()
    assignable = [u for u in staff if u.can("support.manage")]
    template = "console/support/_thread.html" if is_htmx() else "console/support/conversation.html"
    return render_template(
        template,
        ticket=ticket,
        player=db.session.get(User, ticket.user_id),
        names=_names({*(m.author_id for m in ticket.messages), ticket.assigned_to_id}),
        unread=chat.unread_for_staff([ticket.id]).get(ticket.id, 0),
        assignable=assignable,
        error=error,
    ), status


@bp.post("/support/<int:ticket_id>/read")
@console_view("support.manage")
def support_read(ticket_id: int):
    """The staff member has seen the conversation up to its last message."""
    ticket = support.get(ticket_id)
    last = max((m.id for m in ticket.messages), default=0)
    if last:
        chat.mark_read(current_user, ticket_id, last, side="staff")
    return "", 204


@bp.post("/support/<int:ticket_id>/reply")
@console_view("support.manage")
def support_reply(ticket_id: int):
    return _act(ticket_id, lambda: support.staff_reply(current_user, ticket_id, _text("message")))


@bp.post("/support/<int:ticket_id>/assign")
@console_view("support.manage")
def support_assign(ticket_id: int):
    raw = request.form.get("staff_id", "")
    staff_id = current_user.id if raw == "me" else int(raw) if raw.isdigit() else 0
    return _act(ticket_id, lambda: support.assign(current_user, ticket_id, staff_id))


@bp.post("/support/<int:ticket_id>/close")
@console_view("support.manage")
def support_close(ticket_id: int):
    return _act(
        ticket_id, lambda: support.close(current_user, ticket_id), N_("Conversation closed.")
    )


@bp.post("/support/messages/<int:message_id>/hide")
@console_view("support.manage")
def support_hide(message_id: int):
    try:
        msg = chat.hide(current_user, message_id, _text("reason"))
    except AppError as exc:
        flash(_first_error(exc), "error")
        return redirect(request.referrer or url_for("console.support_inbox"))
    flash("Message hidden from the player.", "success")
    return redirect(url_for("console.support_conversation", ticket_id=msg.ticket_id))


def _act(ticket_id: int, action, done: str | None = None):
    ticket = db.session.get(SupportTicket, ticket_id)
    if ticket is None:
        abort(404)
    try:
        action()
    except AppError as exc:
        db.session.expire_all()
        return _conversation_page(
            db.session.get_one(SupportTicket, ticket_id), _first_error(exc), 400
        )
    db.session.expire_all()
    if is_htmx():
        return _conversation_page(db.session.get_one(SupportTicket, ticket_id))
    if done:
        flash(done, "success")
    return redirect(url_for("console.support_conversation", ticket_id=ticket_id))


def _text(name: str) -> str:
    return (request.form.get(name) or "").strip()


def _first_error(exc: AppError) -> str:
    for problem in exc.errors or []:
        if problem.get("message"):
            return str(problem["message"])
    return exc.message


def _names(ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i]
    if not wanted:
        return {}
    rows = db.session.execute(select(User.id, User.username).where(User.id.in_(wanted))).all()
    return {row.id: row.username for row in rows}
