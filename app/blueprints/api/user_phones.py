"""The player's phone numbers: ``/api/user/phones`` (E.164, one primary, verified by SMS)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.auth import MessageEnvelope
from app.blueprints.api.identity_common import client_info, limit_blueprint
from app.core.schemas import envelope_of
from app.identity import otp, phones
from app.identity.auth import player_required

blp = Blueprint(
    "user_phones", __name__, url_prefix="/api/user/phones", description="Player phone numbers"
)
limit_blueprint(blp, "RATE_LIMIT_API")
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


class PhoneSchema(Schema):
    id = fields.Integer()
    number = fields.String(metadata={"description": "E.164, e.g. +35699123456"})
    is_primary = fields.Boolean()
    verified = fields.Function(lambda phone: phone.verified_at is not None)
    verified_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class AddPhoneArgs(Schema):
    number = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata={"description": "International (+...) or national for the player's country"},
    )


class PhoneCodeArgs(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=16))


def _added(phone) -> dict:
    return {"message": "A code has been texted to this number", "data": phone}


@blp.route("")
class Phones(MethodView):
    @player_required
    @blp.response(200, envelope_of(PhoneSchema, many=True))
    @blp.doc(security=SECURITY)
    def get(self):
        """The player's numbers, primary first, with their verification state."""
        return {"data": phones.list_of(g.user.id)}

    @player_required
    @blp.arguments(AddPhoneArgs)
    @blp.response(201, envelope_of(PhoneSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Add a number (unverified) and text it a 6-digit code (send limits: 429)."""
        phone, outgoing = phones.add(g.user, args["number"], ip=client_info().ip)
        otp.deliver(outgoing)
        return _added(phone)


@blp.route("/<int:phone_id>/verify")
class VerifyPhone(MethodView):
    @player_required
    @blp.arguments(PhoneCodeArgs)
    @blp.response(200, envelope_of(PhoneSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, phone_id: int):
        """Verify with the texted code (single use; a few wrong codes kill it)."""
        return {"data": phones.verify(g.user, phone_id, args["code"])}


@blp.route("/<int:phone_id>/resend")
class ResendPhoneCode(MethodView):
    @player_required
    @blp.response(200, MessageEnvelope)
    @blp.doc(security=SECURITY)
    def post(self, phone_id: int):
        """Text a new code (the previous one stops working); spaced and capped: 429."""
        otp.deliver(phones.resend(g.user, phone_id, ip=client_info().ip))
        text = "A new code has been texted to this number"
        return {"message": text, "data": {"message": text}}


@blp.route("/<int:phone_id>/make-primary")
class MakePrimary(MethodView):
    @player_required
    @blp.response(200, envelope_of(PhoneSchema))
    @blp.doc(security=SECURITY)
    def post(self, phone_id: int):
        """Make a verified number the primary one (SMS codes go there)."""
        return {"data": phones.make_primary(g.user, phone_id)}


@blp.route("/<int:phone_id>")
class Phone(MethodView):
    @player_required
    @blp.response(200, MessageEnvelope)
    @blp.doc(security=SECURITY)
    def delete(self, phone_id: int):
        """Remove a number (not the primary one while SMS two-factor is on)."""
        phones.delete(g.user, phone_id)
        return {"message": "Phone number removed", "data": {"message": "Phone number removed"}}
