"""CRM segments (staff): a safe condition language, previews and stored segments."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core.schemas import envelope_of
from app.identity.auth import permission_required
from app.messaging import crm

blp = Blueprint("admin_crm", __name__, url_prefix="/api/admin/crm", description="CRM (staff)")


class SegmentSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    condition = fields.String()
    count = fields.Integer(allow_none=True)
    counted_at = fields.String(allow_none=True)
    created_at = fields.String()


class NewSegmentArgs(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    description = fields.String(load_default=None)
    condition = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class PreviewArgs(Schema):
    condition = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class PreviewSchema(Schema):
    condition = fields.String()
    count = fields.Integer()
    fields_ = fields.List(fields.String(), data_key="fields")


def segment_json(seg) -> dict:
    return {
        "id": seg.id,
        "name": seg.name,
        "description": seg.description,
        "condition": seg.condition,
        "count": seg.last_count,
        "counted_at": seg.last_counted_at.isoformat() if seg.last_counted_at else None,
        "created_at": seg.created_at.isoformat(),
    }


@blp.route("/segments")
class Segments(MethodView):
    @permission_required("crm.manage")
    @blp.response(200, envelope_of(SegmentSchema, many=True))
    def get(self):
        """Stored segments with their last count."""
        return {"data": [segment_json(s) for s in crm.list_segments()]}

    @permission_required("crm.manage")
    @blp.arguments(NewSegmentArgs)
    @blp.response(201, envelope_of(SegmentSchema))
    def post(self, args):
        """Store a segment (the condition is parsed and counted first; bad ones are 400)."""
        seg = crm.create_segment(args["name"], args["condition"], args["description"], g.user)
        return {"data": segment_json(seg)}, 201


@blp.route("/segments/preview")
class Preview(MethodView):
    @permission_required("crm.manage")
    @blp.arguments(PreviewArgs)
    @blp.response(200, envelope_of(PreviewSchema))
    def post(self, args):
        """How many players a condition selects right now."""
        return {
            "data": {
                "condition": args["condition"],
                "count": crm.count(args["condition"]),
                "fields_": sorted(crm.FIELDS),
            }
        }


@blp.route("/segments/<int:segment_id>")
class Segment(MethodView):
    @permission_required("crm.manage")
    @blp.response(200, envelope_of(SegmentSchema))
    def get(self, segment_id):
        """A segment, recounted now."""
        return {"data": segment_json(crm.recount(segment_id))}


class BroadcastArgs(Schema):
    segment_id = fields.Integer(required=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    message = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    email = fields.Boolean(load_default=False)


class BroadcastSchema(Schema):
    id = fields.Integer()
    segment_id = fields.Integer()
    title = fields.String()
    message = fields.String()
    email = fields.Boolean()
    status = fields.String()
    recipients = fields.Integer()
    skipped_no_consent = fields.Integer()
    skipped_excluded = fields.Integer()
    created_at = fields.String()
    finished_at = fields.String(allow_none=True)


def broadcast_json(row) -> dict:
    return {
        "id": row.id,
        "segment_id": row.segment_id,
        "title": row.title,
        "message": row.message,
        "email": row.send_email,
        "status": row.status,
        "recipients": row.recipients,
        "skipped_no_consent": row.skipped_no_consent,
        "skipped_excluded": row.skipped_excluded,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


@blp.route("/broadcast")
class Broadcast(MethodView):
    @permission_required("crm.manage")
    @blp.arguments(BroadcastArgs)
    @blp.response(201, envelope_of(BroadcastSchema))
    def post(self, args):
        """Queue an in-app notification (and optionally an e-mail) to a segment's players
        who opted in to marketing and are not self-excluded; a job fans it out."""
        row = crm.create_broadcast(
            args["segment_id"], args["title"], args["message"], args["email"], g.user
        )
        return {"data": broadcast_json(row)}, 201


@blp.route("/broadcast/<int:broadcast_id>")
class BroadcastOne(MethodView):
    @permission_required("crm.manage")
    @blp.response(200, envelope_of(BroadcastSchema))
    def get(self, broadcast_id):
        """A broadcast's delivery counts."""
        return {"data": broadcast_json(crm.get_broadcast(broadcast_id))}
