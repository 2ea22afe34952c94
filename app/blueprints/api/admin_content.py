"""Content (staff): items of each kind, per-language drafts, preview, publish, unpublish,
images. Permission ``content.manage`` (Admin, Manager); every change is audited."""

from __future__ import annotations

import re

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as MarshmallowError

from app.content import editing, media
from app.content.models import AUDIENCES, BANNER_POSITIONS, KINDS, ContentItem, ContentVersion
from app.content.sanitize import MAX_BODY, MAX_TITLE
from app.core.errors import ValidationError
from app.core.schemas import ID_RANGE, PageArgs, envelope_of, page_meta
from app.identity.auth import permission_required

blp = Blueprint(
    "admin_content", __name__, url_prefix="/api/admin/content", description="Content (staff)"
)


class WholeNumber(fields.Integer):
    """An integer, or its decimal digits as text (what a console form posts); never a
    fraction (0.001 is not silently read as 0) nor a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool | float) or (
            isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,19}", value.strip())
        ):
            raise MarshmallowError(self.error_messages["invalid"])
        return super()._deserialize(value, attr, data, **kwargs)


class ItemArgs(Schema):
    """Fields of an item; which ones apply depends on its kind (refused otherwise)."""

    name = fields.String(validate=validate.Length(min=1, max=120), metadata={"label": "Name"})
    slug = fields.String(
        allow_none=True,
        validate=validate.Length(max=120),
        metadata={"description": "Pages only: lower-case letters, digits and dashes"},
    )
    category = fields.String(
        allow_none=True, validate=validate.Length(max=64), metadata={"description": "FAQ only"}
    )
    sort_order = WholeNumber(
        validate=validate.Range(min=-1_000_000, max=1_000_000),
        metadata={"description": "FAQ and banners: ascending"},
    )
    position = fields.String(
        allow_none=True,
        validate=validate.OneOf(BANNER_POSITIONS),
        metadata={"description": "Banners only"},
    )
    starts_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "Announcements and banners: shown from"}
    )
    ends_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "Announcements and banners: shown until"}
    )
    audience = fields.String(validate=validate.OneOf(AUDIENCES))
    segment_id = WholeNumber(
        allow_none=True,
        validate=ID_RANGE,
        metadata={"description": "For the segment audience"},
    )
    vip_level = fields.String(
        allow_none=True,
        validate=validate.Length(max=32),
        metadata={"description": "For the vip audience: this loyalty level and above"},
    )


class NewItemArgs(ItemArgs):
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))


class DraftArgs(Schema):
    title = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_TITLE),
        metadata={"description": "Plain text"},
    )
    body = fields.String(
        load_default="",
        validate=validate.Length(max=MAX_BODY),
        metadata={"widget": "textarea", "description": "HTML; sanitised when saved"},
    )


class VersionSchema(Schema):
    language = fields.String(required=True)
    draft_title = fields.String(required=True)
    draft_body = fields.String(required=True)
    published_title = fields.String(allow_none=True)
    published_body = fields.String(allow_none=True)
    published_at = fields.String(allow_none=True)
    has_unpublished_changes = fields.Boolean(required=True)
    updated_at = fields.String(required=True)


class ItemSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    name = fields.String(required=True)
    slug = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    sort_order = fields.Integer(required=True)
    position = fields.String(allow_none=True)
    starts_at = fields.String(allow_none=True)
    ends_at = fields.String(allow_none=True)
    audience = fields.String(required=True)
    segment_id = fields.Integer(allow_none=True)
    vip_level = fields.String(allow_none=True)
    image_url = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)
    versions = fields.List(fields.Nested(VersionSchema), required=True)


class ListArgs(PageArgs):
    kind = fields.String(load_default=None, validate=validate.OneOf(KINDS))


def version_json(v: ContentVersion) -> dict:
    return {
        "language": v.language,
        "draft_title": v.draft_title,
        "draft_body": v.draft_body,
        "published_title": v.published_title,
        "published_body": v.published_body,
        "published_at": v.published_at.isoformat() if v.published_at else None,
        "has_unpublished_changes": v.has_unpublished_changes,
        "updated_at": v.updated_at.isoformat(),
    }


def item_json(item: ContentItem) -> dict:
    return {
        "id": item.id,
        "kind": item.kind,
        **editing.item_snapshot(item),
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
        "versions": [version_json(v) for v in item.versions],
    }


def _language(raw: str) -> str:
    if len(raw) > 16:
        raise ValidationError.field("language", "A language code such as en, de or pt-br")
    return raw


@blp.route("/items")
class Items(MethodView):
    @permission_required("content.manage")
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, envelope_of(ItemSchema, many=True))
    def get(self, args):
        """Content items, newest first, optionally of one kind."""
        rows, total = editing.list_items(args["kind"], args["page"], args["limit"])
        return {
            "data": [item_json(i) for i in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }

    @permission_required("content.manage")
    @blp.arguments(NewItemArgs)
    @blp.response(201, envelope_of(ItemSchema))
    def post(self, args):
        """Create an item (no language version yet: save a draft next); audited."""
        item = editing.create_item(args.pop("kind"), args, actor=g.user)
        return {"data": item_json(item)}, 201


@blp.route("/items/<int:item_id>")
class Item(MethodView):
    @permission_required("content.manage")
    @blp.response(200, envelope_of(ItemSchema))
    def get(self, item_id: int):
        """An item with every language version (draft and published copy)."""
        return {"data": item_json(editing.get_item(item_id))}

    @permission_required("content.manage")
    @blp.arguments(ItemArgs)
    @blp.response(200, envelope_of(ItemSchema))
    def patch(self, args, item_id: int):
        """Change an item's settings (window, audience, order...); audited. Takes effect at
        once for every published version."""
        return {"data": item_json(editing.update_item(item_id, args, actor=g.user))}


@blp.route("/items/<int:item_id>/versions/<string:language>")
class Version(MethodView):
    @permission_required("content.manage")
    @blp.arguments(DraftArgs)
    @blp.response(200, envelope_of(VersionSchema))
    def put(self, args, item_id: int, language: str):
        """Save the draft of one language (created if new; the body is sanitised). The
        published copy is unchanged until the version is published."""
        version = editing.save_draft(
            item_id, _language(language), args["title"], args["body"], actor=g.user
        )
        return {"data": version_json(version)}


@blp.route("/items/<int:item_id>/versions/<string:language>/publish")
class Publish(MethodView):
    @permission_required("content.manage")
    @blp.response(200, envelope_of(VersionSchema))
    def post(self, item_id: int, language: str):
        """Publish the draft: players see it from now on. An announcement in its window is
        pushed live (``content.announcement``) to its audience."""
        return {"data": version_json(editing.publish(item_id, _language(language), actor=g.user))}


@blp.route("/items/<int:item_id>/versions/<string:language>/unpublish")
class Unpublish(MethodView):
    @permission_required("content.manage")
    @blp.response(200, envelope_of(VersionSchema))
    def post(self, item_id: int, language: str):
        """Withdraw the published copy (409 when it is not published); the draft stays."""
        version = editing.unpublish(item_id, _language(language), actor=g.user)
        return {"data": version_json(version)}


@blp.route("/items/<int:item_id>/image")
class Image(MethodView):
    @permission_required("content.manage")
    @blp.doc(
        security=[{"bearerAuth": []}],
        requestBody={
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            }
        },
    )
    @blp.response(200, envelope_of(ItemSchema))
    def post(self, item_id: int):
        """Upload the image of an announcement or banner (JPEG, PNG or WebP, validated by
        decoding; at most CONTENT_IMAGE_MAX_BYTES, 4096 px a side)."""
        upload = request.files.get("file")
        if upload is None:
            raise ValidationError.field("file", "A file is required")
        limit = media.max_bytes()
        item = media.set_image(item_id, upload.stream.read(limit + 1), actor=g.user)
        return {"data": item_json(item)}
