"""KYC: player uploads and status; staff review queue, decisions and document download."""

from __future__ import annotations

from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.compliance import kyc
from app.compliance.models import DOCUMENT_TYPES
from app.core.errors import ValidationError
from app.core.extensions import client_ip, db
from app.core.schemas import envelope_of
from app.core.security import body_limit
from app.identity.auth import permission_required, player_required
from app.identity.models import User

blp = Blueprint("kyc", __name__, url_prefix="/api", description="KYC verification")


class DocumentSchema(Schema):
    id = fields.Integer()
    submission_id = fields.Integer()
    type = fields.String()
    filename = fields.String(allow_none=True)
    mime_type = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
    status = fields.String()
    uploaded_at = fields.DateTime()


def document_json(doc) -> dict:
    return {
        "id": doc.id,
        "submission_id": doc.submission_id,
        "type": doc.doc_type,
        "filename": doc.original_filename,
        "mime_type": doc.mime_type,
        "size": doc.size_bytes,
        "sha256": doc.sha256,
        "status": doc.submission.status,
        "uploaded_at": doc.uploaded_at,
    }


class UploadJson(Schema):
    type = fields.String(required=True, validate=validate.OneOf(DOCUMENT_TYPES))
    file = fields.String(required=True)
    filename = fields.String(load_default=None, validate=validate.Length(max=255))


class KycStatusSchema(Schema):
    status = fields.String()
    level = fields.Integer()
    submission = fields.Dict(allow_none=True)
    required_documents = fields.List(fields.String())


def _upload_body_limit() -> int:
    """A document of KYC_MAX_FILE_BYTES as JSON base64 (4/3 of it) plus the form around it:
    larger than the API's JSON default, which would refuse most scans."""
    return kyc.uploads.max_bytes() * 4 // 3 + 64 * 1024


@blp.route("/kyc/upload")
class Upload(MethodView):
    @body_limit(_upload_body_limit)
    @player_required
    @blp.response(201, envelope_of(DocumentSchema))
    @blp.doc(
        requestBody={
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "enum": list(DOCUMENT_TYPES)},
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "enum": list(DOCUMENT_TYPES)},
                            "file": {"type": "string", "description": "base64 or data: URL"},
                            "filename": {"type": "string"},
                        },
                    }
                },
            }
        }
    )
    def post(self):
        """Upload one document (multipart ``type`` + ``file``, or JSON base64)."""
        if request.mimetype == "multipart/form-data":
            doc_type = request.form.get("type", "")
            upload = request.files.get("file") or request.files.get("document")
            if upload is None:
                raise ValidationError.field("file", "A file is required")
            data = upload.stream.read(kyc.uploads.max_bytes() + 1)
            filename = upload.filename
        else:
            from marshmallow import ValidationError as SchemaError

            try:
                args = UploadJson().load(request.get_json(silent=True) or {})
            except SchemaError as exc:
                raise ValidationError(
                    "Validation failed",
                    errors=[
                        {"field": k, "message": " ".join(v) if isinstance(v, list) else str(v)}
                        for k, v in exc.messages.items()
                    ],
                ) from None
            doc_type, filename = args["type"], args["filename"]
            data = kyc.decode_base64(args["file"])
        doc = kyc.upload_document(
            g.user, doc_type=doc_type, data=data, filename=filename, ip=client_ip()
        )
        return {"data": document_json(doc)}, 201


@blp.route("/kyc/status")
class Status(MethodView):
    @player_required
    @blp.response(200, envelope_of(KycStatusSchema))
    def get(self):
        return {"data": kyc.status(g.user)}


@blp.route("/kyc/documents")
class Documents(MethodView):
    @player_required
    @blp.response(200, envelope_of(DocumentSchema, many=True))
    def get(self):
        return {"data": [document_json(d) for d in kyc.documents_of(g.user.id)]}


# --- staff -----------------------------------------------------------------------------------


class SubmissionSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    username = fields.String()
    status = fields.String()
    level = fields.Integer(allow_none=True)
    reviewer_id = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    documents = fields.List(fields.Nested(DocumentSchema))
    history = fields.List(fields.Dict())
    submitted_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)
    player = fields.Dict()


def submission_json(sub, *, detail: bool = False) -> dict:
    user = db.session.get_one(User, sub.user_id)  # sub.user_id is a foreign key
    data = {
        "id": sub.id,
        "user_id": sub.user_id,
        "username": user.username,
        "status": sub.status,
        "level": sub.level,
        "reviewer_id": sub.reviewer_id,
        "reason": sub.reason,
        "documents": [document_json(d) for d in sub.documents],
        "submitted_at": sub.submitted_at,
        "decided_at": sub.decided_at,
    }
    if detail:
        data["ip"] = sub.ip
        data["history"] = [
            {
                "action": e.action,
                "actor_id": e.actor_id,
                "details": e.details,
                "created_at": e.created_at.isoformat(),
            }
            for e in sub.history
        ]
        data["player"] = {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "date_of_birth": user.date_of_birth,
            "country": user.country,
            "kyc_status": user.kyc_status,
            "kyc_level": user.kyc_level,
        }
    return data


class KycRejectArgs(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class ApproveArgs(Schema):
    note = fields.String(load_default=None, validate=validate.Length(max=500))


@blp.route("/admin/kyc/pending")
class Pending(MethodView):
    @permission_required("kyc.read")
    @blp.response(200, envelope_of(SubmissionSchema, many=True))
    def get(self):
        """Submissions waiting for a decision, oldest first."""
        return {"data": [submission_json(s) for s in kyc.pending_submissions()]}


@blp.route("/admin/kyc/<int:submission_id>")
class Submission(MethodView):
    @permission_required("kyc.read")
    @blp.response(200, envelope_of(SubmissionSchema))
    def get(self, submission_id):
        """One submission: documents, metadata, IP and history."""
        return {"data": submission_json(kyc.get_submission(submission_id), detail=True)}


@blp.route("/admin/kyc/<int:submission_id>/approve")
class Approve(MethodView):
    @permission_required("kyc.review")
    @blp.arguments(ApproveArgs)
    @blp.response(200, envelope_of(SubmissionSchema))
    def post(self, args, submission_id):
        kyc.approve(submission_id, g.user, note=args["note"])
        return {"data": submission_json(kyc.get_submission(submission_id), detail=True)}


@blp.route("/admin/kyc/<int:submission_id>/reject")
class Reject(MethodView):
    @permission_required("kyc.review")
    @blp.arguments(KycRejectArgs)
    @blp.response(200, envelope_of(SubmissionSchema))
    def post(self, args, submission_id):
        kyc.reject(submission_id, g.user, reason=args["reason"])
        return {"data": submission_json(kyc.get_submission(submission_id), detail=True)}


@blp.route("/admin/kyc/documents/<int:document_id>/download")
class Download(MethodView):
    @permission_required("kyc.read")
    @blp.response(200, description="The file (audited)")
    def get(self, document_id):
        doc, data = kyc.open_document(document_id, g.user)
        response = Response(data, mimetype=doc.mime_type)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="kyc-{doc.id}.{doc.storage_name.rsplit(".", 1)[-1]}"'
        )
        response.headers["Cache-Control"] = "no-store"
        return response
