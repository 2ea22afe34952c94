"""``/api/notifications``: the signed-in user's inbox (players and staff alike)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.core import notifications
from app.core.db import atomic
from app.core.schemas import PageArgs, envelope_of, page_meta
from app.identity.auth import login_required

blp = Blueprint(
    "notifications", __name__, url_prefix="/api/notifications", description="Notifications"
)


class NotificationSchema(Schema):
    id = fields.Integer()
    type = fields.String()
    title = fields.String()
    message = fields.String()
    data = fields.Raw(allow_none=True)
    read = fields.Boolean()
    read_at = fields.String(allow_none=True)
    timestamp = fields.String()


class NotificationListArgs(PageArgs):
    unread = fields.Boolean(load_default=False, metadata={"description": "Only unread ones"})


class UnreadCountSchema(Schema):
    count = fields.Integer()


class ReadAllSchema(Schema):
    updated = fields.Integer()


@blp.route("")
class NotificationList(MethodView):
    @login_required
    @blp.arguments(NotificationListArgs, location="query")
    @blp.response(200, envelope_of(NotificationSchema, many=True))
    def get(self, args):
        """My notifications, newest first (``?unread=true`` for unread only)."""
        rows, total = notifications.list_for(
            g.user.id, page=args["page"], limit=args["limit"], unread_only=args["unread"]
        )
        return {
            "data": [notifications.as_json(n) for n in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }


@blp.route("/unread-count")
class UnreadCount(MethodView):
    @login_required
    @blp.response(200, envelope_of(UnreadCountSchema))
    def get(self):
        """How many of my notifications are unread."""
        return {"data": {"count": notifications.unread_count(g.user.id)}}


@blp.route("/<int:notification_id>/read")
class MarkRead(MethodView):
    @login_required
    @blp.response(200, envelope_of(NotificationSchema))
    def post(self, notification_id: int):
        """Mark one of my notifications read (idempotent)."""
        with atomic():
            row = notifications.mark_read(g.user.id, notification_id)
        return {"data": notifications.as_json(row)}


@blp.route("/read-all")
class MarkAllRead(MethodView):
    @login_required
    @blp.response(200, envelope_of(ReadAllSchema))
    def post(self):
        """Mark all my notifications read."""
        with atomic():
            updated = notifications.mark_all_read(g.user.id)
        return {"data": {"updated": updated}}
