"""``/api/admin/settings``: the typed operator settings (``app.core.opsettings``), read and
changed by an Admin (permission ``settings.manage``), every change audited."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core import opsettings
from app.core.db import atomic
from app.core.schemas import envelope_of
from app.identity.auth import permission_required

blp = Blueprint(
    "admin_settings",
    __name__,
    url_prefix="/api/admin/settings",
    description="Operator settings (staff)",
)
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


class SettingSchema(Schema):
    key = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": ["bool", "int", "string", "list"]})
    category = fields.String()
    description = fields.String()
    value = fields.Raw(allow_none=True, metadata={"description": "The value in force"})
    default = fields.Raw(
        allow_none=True, metadata={"description": "The environment's value, else built in"}
    )
    source = fields.String(metadata={"enum": ["default", "override"]})
    env = fields.String(metadata={"description": "The environment variable of the default"})
    minimum = fields.Integer(allow_none=True)
    maximum = fields.Integer(allow_none=True)
    choices = fields.List(fields.String(), allow_none=True)
    max_length = fields.Integer(allow_none=True)
    unit = fields.String(allow_none=True)


class SettingsSchema(Schema):
    settings = fields.List(fields.Nested(SettingSchema), required=True)


class SettingsArgs(Schema):
    settings = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(allow_none=True),
        required=True,
        validate=validate.Length(min=1),
        metadata={"description": "key -> new value; null returns a setting to its default"},
    )
    reason = fields.String(load_default=None, validate=validate.Length(max=500))


@blp.route("")
class Settings(MethodView):
    @permission_required("settings.manage")
    @blp.response(200, envelope_of(SettingsSchema))
    @blp.doc(security=SECURITY)
    def get(self):
        """Every operator setting: declaration, value in force, default and its source."""
        return {"data": {"settings": opsettings.describe()}}

    @permission_required("settings.manage")
    @blp.arguments(SettingsArgs)
    @blp.response(200, envelope_of(SettingsSchema))
    @blp.doc(security=SECURITY)
    def put(self, args):
        """Change some settings at once (all or none): validated per key, each change audited
        with its before and after."""
        with atomic():
            opsettings.put_many(args["settings"], actor=g.user, reason=args["reason"])
        return {"data": {"settings": opsettings.describe()}}
