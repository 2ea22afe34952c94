"""Support tickets: the player's tickets and the staff queue."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core.schemas import PageArgs, envelope_of, page_meta
from app.identity.auth import permission_required, player_required
from app.messaging import support
from app.messaging.models import TICKET_CATEGORIES, TICKET_PRIORITIES, TICKET_STATUSES

blp = Blueprint("support", __name__, url_prefix="/api", description="Support tickets")


class SupportMessageSchema(Schema):
    id = fields.Integer()
    ticket_id = fields.Integer()
    author_id = fields.Integer()
    author = fields.String()
    message = fields.String(metadata={"description": "Empty for a player when hidden"})
    hidden = fields.Boolean(metadata={"description": "Hidden by moderation (audited)"})
    created_at = fields.String()


class SupportTicketSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    subject = fields.String()
    category = fields.String()
    priority = fields.String()
    status = fields.String()
    assigned_to_id = fields.Integer(allow_none=True)
    created_at = fields.String()
    last_message_at = fields.String()
    closed_at = fields.String(allow_none=True)
    messages_count = fields.Integer()
    channel = fields.String(metadata={"description": "ticket, or chat (live chat over Socket.IO)"})
    messages = fields.List(fields.Nested(SupportMessageSchema))


class NewTicketArgs(Schema):
    subject = fields.String(required=True, validate=validate.Length(min=1, max=200))
    message = fields.String(required=True, validate=validate.Length(min=1, max=5000))
    category = fields.String(load_default="other", validate=validate.OneOf(TICKET_CATEGORIES))
    priority = fields.String(load_default="normal", validate=validate.OneOf(TICKET_PRIORITIES))


class ReplyArgs(Schema):
    message = fields.String(required=True, validate=validate.Length(min=1, max=5000))


class AssignArgs(Schema):
    staff_id = fields.Integer(required=True)


class StaffListArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(TICKET_STATUSES))
    assigned_to = fields.Integer(load_default=None)
    user_id = fields.Integer(load_default=None)


@blp.route("/support/tickets")
class Tickets(MethodView):
    @player_required
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(SupportTicketSchema, many=True))
    def get(self, args):
        """Your tickets, most recent activity first."""
        rows, total = support.list_for_player(g.user, args["page"], args["limit"])
        return {
            "data": [support.ticket_json(t) for t in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }

    @player_required
    @blp.arguments(NewTicketArgs)
    @blp.response(201, envelope_of(SupportTicketSchema))
    def post(self, args):
        """Open a ticket; support staff are told at once."""
        ticket = support.open_ticket(g.user, **args)
        return {"data": support.ticket_json(ticket, with_messages=True, for_player=True)}, 201


@blp.route("/support/tickets/<int:ticket_id>")
class Ticket(MethodView):
    @player_required
    @blp.response(200, envelope_of(SupportTicketSchema))
    def get(self, ticket_id):
        """One of your tickets with its conversation."""
        ticket = support.get_for_player(g.user, ticket_id)
        return {"data": support.ticket_json(ticket, with_messages=True, for_player=True)}


@blp.route("/support/tickets/<int:ticket_id>/reply")
class Reply(MethodView):
    @player_required
    @blp.arguments(ReplyArgs)
    @blp.response(201, envelope_of(SupportMessageSchema))
    def post(self, args, ticket_id):
        """Add a message to your ticket (a closed ticket takes none)."""
        msg = support.player_reply(g.user, ticket_id, args["message"])
        return {"data": support.message_json(msg, for_player=True)}, 201


@blp.route("/admin/support/tickets")
class StaffTickets(MethodView):
    @permission_required("support.manage")
    @blp.arguments(StaffListArgs, location="query")
    @blp.response(200, envelope_of(SupportTicketSchema, many=True))
    def get(self, args):
        """The ticket queue (filter by status, assignee, player)."""
        rows, total = support.list_for_staff(
            status=args["status"],
            assigned_to_id=args["assigned_to"],
            user_id=args["user_id"],
            page=args["page"],
            limit=args["limit"],
        )
        return {
            "data": [support.ticket_json(t) for t in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }


@blp.route("/admin/support/tickets/<int:ticket_id>")
class StaffTicket(MethodView):
    @permission_required("support.manage")
    @blp.response(200, envelope_of(SupportTicketSchema))
    def get(self, ticket_id):
        return {"data": support.ticket_json(support.get(ticket_id), with_messages=True)}


@blp.route("/admin/support/tickets/<int:ticket_id>/reply")
class StaffReply(MethodView):
    @permission_required("support.manage")
    @blp.arguments(ReplyArgs)
    @blp.response(201, envelope_of(SupportMessageSchema))
    def post(self, args, ticket_id):
        """Answer the player (pushed to them as ``chat.message``)."""
        msg = support.staff_reply(g.user, ticket_id, args["message"])
        return {"data": support.message_json(msg)}, 201


@blp.route("/admin/support/tickets/<int:ticket_id>/assign")
class StaffAssign(MethodView):
    @permission_required("support.manage")
    @blp.arguments(AssignArgs)
    @blp.response(200, envelope_of(SupportTicketSchema))
    def post(self, args, ticket_id):
        ticket = support.assign(g.user, ticket_id, args["staff_id"])
        return {"data": support.ticket_json(ticket)}


@blp.route("/admin/support/tickets/<int:ticket_id>/close")
class StaffClose(MethodView):
    @permission_required("support.manage")
    @blp.response(200, envelope_of(SupportTicketSchema))
    def post(self, ticket_id):
        return {"data": support.ticket_json(support.close(g.user, ticket_id))}
