"""``/api/admin/exports`` (permission ``exports.own``): queued CSV exports
(``app.reports.exports``). A staff member asks for the kinds their permissions allow, and
sees and downloads only their own."""

from __future__ import annotations

from flask import g, send_file
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields, validate

from app.core.openapi import ErrorSchema
from app.core.schemas import envelope_of
from app.identity.auth import permission_required
from app.reports import exports
from app.reports.models import EXPORT_STATUSES

blp = Blueprint(
    "admin_exports", __name__, url_prefix="/api/admin/exports", description="Staff: CSV exports"
)


def _staff():
    return g.user


class ExportSchema(Schema):
    id = fields.String(attribute="public_id", metadata={"description": "Random, 32 hex"})
    kind = fields.String(metadata={"enum": list(exports.KINDS)})
    params = fields.Dict()
    status = fields.String(metadata={"enum": list(EXPORT_STATUSES)})
    rows_done = fields.Integer()
    rows_total = fields.Integer(allow_none=True)
    percent = fields.Integer()
    file_name = fields.String()
    size_bytes = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    downloads = fields.Integer()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime()


class ExportRequestSchema(Schema):
    """The kind and its filters: financial / providers (date_from, date_to, currency; group
    for financial), players_report (date_from, date_to), transactions (player_id, type,
    currency, source, date_from, date_to), players (q, status, country)."""

    class Meta:
        unknown = INCLUDE

    kind = fields.String(required=True, validate=validate.OneOf(list(exports.KINDS)))
    date_from = fields.String(metadata={"example": "2026-11-01"})
    date_to = fields.String(metadata={"example": "2026-11-30"})
    currency = fields.String(metadata={"example": "EUR"})
    group = fields.String(metadata={"example": "day"})
    player_id = fields.Integer(validate=validate.Range(min=1, max=10**18 - 1))
    type = fields.String()
    source = fields.String()
    q = fields.String()
    status = fields.String()
    country = fields.String()


class ExportListSchema(Schema):
    exports = fields.List(fields.Nested(ExportSchema))


@blp.route("")
class Exports(MethodView):
    @permission_required("exports.own")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, envelope_of(ExportListSchema))
    def get(self):
        """Your exports, newest first (the last 50), with their progress."""
        return {"data": {"exports": exports.list_for(_staff())}}

    @permission_required("exports.own")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(ExportRequestSchema)
    @blp.response(202, envelope_of(ExportSchema))
    def post(self, args):
        """Queue an export (audited). It runs as a job; poll it, then download the file."""
        params = {k: v for k, v in args.items() if k != "kind"}
        export = exports.request_export(_staff(), args["kind"], params)
        return {"data": export}, 202


@blp.route("/<string:export_id>")
class ExportDetail(MethodView):
    @permission_required("exports.own")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, envelope_of(ExportSchema))
    def get(self, export_id: str):
        """One of your exports: status and progress (404 for anyone else's)."""
        return {"data": exports.get_for(_staff(), export_id)}


@blp.route("/<string:export_id>/download")
class ExportDownload(MethodView):
    @permission_required("exports.own")
    @blp.doc(
        security=[{"bearerAuth": []}],
        responses={
            "200": {
                "description": "The CSV file (formula-like cells neutralised)",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        },
    )
    @blp.alt_response(410, schema=ErrorSchema, description="The export has expired")
    def get(self, export_id: str):
        """Download one of your ready exports (audited)."""
        path, export = exports.download(_staff(), export_id)
        return send_file(
            path, mimetype="text/csv", as_attachment=True, download_name=export.file_name
        )
