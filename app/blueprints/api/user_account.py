"""The player's own account: ``/api/user/profile``, password, 2FA, activity."""

from __future__ import annotations

from flask import g, make_response, request
from flask.views import MethodView
from flask_jwt_extended import get_jwt
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.auth import MessageEnvelope
from app.blueprints.api.identity_common import (
    PROFILE_MAX_BODY_BYTES,
    MessageSchema,
    ProfileEditFields,
    ProfileSchema,
    limit_blueprint,
)
from app.bonus import loyalty
from app.core import preferences
from app.core.db import atomic
from app.core.errors import ValidationError
from app.core.openapi import ErrorSchema
from app.core.schemas import PageArgs, envelope_of, page_meta
from app.core.security import body_limit
from app.identity import accounts as identity
from app.identity import addresses, archive, avatars, closure, gdpr, otp_signup
from app.identity.auth import login_required, player_required

blp = Blueprint("user_account", __name__, url_prefix="/api/user", description="Player account")
limit_blueprint(blp, "RATE_LIMIT_API")
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


class PasswordChangeArgs(Schema):
    current_password = fields.String(required=True, validate=validate.Length(max=256))
    new_password = fields.String(required=True, validate=validate.Length(max=256))
    confirm_password = fields.String(allow_none=True, validate=validate.Length(max=256))


class PasswordSetArgs(Schema):
    new_password = fields.String(required=True, validate=validate.Length(max=256))


class PasswordChangedSchema(MessageSchema):
    sessions_revoked = fields.Integer()


class TwoFactorStatusSchema(Schema):
    is_enabled = fields.Boolean()
    has_secret = fields.Boolean()
    has_secret_setup = fields.Boolean()
    mandatory = fields.Boolean()
    can_skip = fields.Boolean()
    skipped = fields.Boolean()
    sms_enabled = fields.Boolean(metadata={"description": "players: texted codes (SMS 2FA)"})
    method = fields.String(allow_none=True, metadata={"description": "totp | sms | null"})


class TwoFactorSetupSchema(Schema):
    qr_code = fields.String()
    auth_secret = fields.String()


class CodeArgs(Schema):
    auth_code = fields.String(required=True, validate=validate.Length(max=16))


class DisableArgs(Schema):
    auth_code = fields.String(allow_none=True, validate=validate.Length(max=16))
    password = fields.String(allow_none=True, validate=validate.Length(max=256))


class PasswordArgs(Schema):
    password = fields.String(required=True, validate=validate.Length(max=256))


class TwoFactorResultSchema(Schema):
    message = fields.String()
    is_enabled = fields.Boolean()


class LoginEventSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    success = fields.Boolean()
    reason = fields.String(allow_none=True)
    portal = fields.String()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    device_fingerprint = fields.String(allow_none=True)
    country = fields.String(allow_none=True)


class ActivitySummarySchema(Schema):
    user_id = fields.Integer()
    username = fields.String()
    member_since = fields.DateTime()
    login_count = fields.Integer()
    failed_login_count = fields.Integer()
    active_days = fields.Integer()
    unique_ips = fields.Integer()
    unique_devices = fields.Integer()
    last_login = fields.DateTime(allow_none=True)
    active_sessions = fields.Integer()
    two_factor_enabled = fields.Boolean()


class PlayerProfileSchema(ProfileSchema):
    #: Points, level, next level and progress % (``GET /api/user/loyalty`` has the history).
    loyalty = fields.Function(lambda user: loyalty.progress(user.id))


def _edit(args: dict) -> dict:
    user = identity.update_profile(g.user, args)
    return {"data": user}


@blp.route("/profile")
class Profile(MethodView):
    @login_required
    @blp.response(200, envelope_of(PlayerProfileSchema))
    @blp.doc(security=SECURITY)
    def get(self):
        """The caller's profile, with loyalty level progress."""
        return {"data": g.user}

    @body_limit(PROFILE_MAX_BODY_BYTES)
    @login_required
    @blp.arguments(ProfileEditFields)
    @blp.response(200, envelope_of(ProfileSchema))
    @blp.doc(security=SECURITY)
    def put(self, args):
        """Update editable profile fields; balance, role, status, KYC ... are refused (400)."""
        return _edit(args)


@blp.route("/profile/update")
class ProfileUpdate(MethodView):
    @body_limit(PROFILE_MAX_BODY_BYTES)
    @login_required
    @blp.arguments(ProfileEditFields)
    @blp.response(200, envelope_of(ProfileSchema))
    @blp.doc(security=SECURITY)
    def put(self, args):
        """Alias of ``PUT /api/user/profile`` (integration guide path)."""
        return _edit(args)


@blp.route("/password/change")
class PasswordChange(MethodView):
    @login_required
    @blp.arguments(PasswordChangeArgs)
    @blp.response(200, envelope_of(PasswordChangedSchema))
    @blp.doc(security=SECURITY)
    def put(self, args):
        """Change the password; every other session is logged out."""
        revoked = identity.change_password(g.user, current_session=get_jwt().get("fam"), **args)
        return {"data": {"message": "Password changed", "sessions_revoked": revoked}}


@blp.route("/password/set")
class PasswordSet(MethodView):
    @player_required
    @blp.arguments(PasswordSetArgs)
    @blp.response(200, MessageEnvelope)
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Add a first password to an account opened with a one-time code (409 if it has one)."""
        otp_signup.set_first_password(g.user, args["new_password"])
        return {"message": "Password set", "data": {"message": "Password set"}}


@blp.route("/2fa/sms/enable")
class SmsTwoFactorEnable(MethodView):
    @player_required
    @blp.arguments(PasswordArgs)
    @blp.response(200, envelope_of(TwoFactorResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Texted codes to the primary verified phone become the second factor (players)."""
        identity.sms_two_factor_enable(g.user, args["password"])
        return {"data": {"message": "SMS two-factor enabled", "is_enabled": True}}


@blp.route("/2fa/sms/disable")
class SmsTwoFactorDisable(MethodView):
    @player_required
    @blp.arguments(PasswordArgs)
    @blp.response(200, envelope_of(TwoFactorResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Turn texted sign-in codes off (password required)."""
        identity.sms_two_factor_disable(g.user, args["password"])
        return {"data": {"message": "SMS two-factor disabled", "is_enabled": False}}


class PreferenceCategorySchema(Schema):
    category = fields.String()
    mandatory = fields.Boolean(metadata={"description": "cannot be turned off"})
    description = fields.String()
    channels = fields.Dict(
        keys=fields.String(),
        values=fields.Boolean(),
        metadata={"description": "email, sms, push, in_app -> on/off"},
    )


class PreferencesArgs(Schema):
    preferences = fields.Dict(
        required=True,
        keys=fields.String(validate=validate.Length(max=32)),
        values=fields.Dict(
            keys=fields.String(validate=validate.Length(max=16)), values=fields.Raw()
        ),
        metadata={"description": '{"marketing": {"sms": false}, "rewards": {"email": false}}'},
    )


@blp.route("/notification-preferences")
class NotificationPreferences(MethodView):
    @player_required
    @blp.response(200, envelope_of(PreferenceCategorySchema, many=True))
    @blp.doc(security=SECURITY)
    def get(self):
        """Which channels carry which categories (security, account and responsible-gaming
        messages are mandatory)."""
        return {"data": preferences.of(g.user.id)}

    @player_required
    @blp.arguments(PreferencesArgs)
    @blp.response(200, envelope_of(PreferenceCategorySchema, many=True))
    @blp.doc(security=SECURITY)
    def put(self, args):
        """Turn channels of optional categories on or off (400 for a mandatory one)."""
        with atomic():
            data = preferences.update(g.user.id, args["preferences"], actor=g.user)
        return {"data": data}


@blp.route("/2fa/status")
class TwoFactorStatus(MethodView):
    @login_required
    @blp.response(200, envelope_of(TwoFactorStatusSchema))
    @blp.doc(security=SECURITY)
    def get(self):
        return {"data": identity.two_factor_status(g.user)}


@blp.route("/2fa/setup")
class TwoFactorSetup(MethodView):
    @login_required
    @blp.response(200, envelope_of(TwoFactorSetupSchema))
    @blp.doc(security=SECURITY)
    def post(self):
        """A new secret + QR code to enrol (replaces a pending, not-yet-enabled one)."""
        return {"data": identity.two_factor_setup(g.user)}


@blp.route("/2fa/enable")
class TwoFactorEnable(MethodView):
    @login_required
    @blp.arguments(CodeArgs)
    @blp.response(200, envelope_of(TwoFactorResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Turn 2FA on with a current code from the authenticator app."""
        identity.two_factor_enable(g.user, args["auth_code"])
        return {"data": {"message": "2FA enabled successfully", "is_enabled": True}}


@blp.route("/2fa/disable")
class TwoFactorDisable(MethodView):
    @login_required
    @blp.arguments(DisableArgs)
    @blp.response(200, envelope_of(TwoFactorResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Turn 2FA off with a code or the password (not allowed for Admin and Manager)."""
        identity.two_factor_disable(
            g.user, auth_code=args.get("auth_code"), password=args.get("password")
        )
        return {"data": {"message": "2FA disabled successfully", "is_enabled": False}}


@blp.route("/2fa/skip")
class TwoFactorSkip(MethodView):
    @login_required
    @blp.arguments(PasswordArgs)
    @blp.response(200, envelope_of(TwoFactorResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Record that the player chose not to enrol now (confirmed with the password)."""
        identity.two_factor_skip(g.user, args["password"])
        return {"data": {"message": "2FA setup skipped", "is_enabled": False}}


@blp.route("/activity")
class Activity(MethodView):
    @login_required
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(LoginEventSchema, many=True))
    @blp.doc(security=SECURITY)
    def get(self, args):
        """Login history: time, IP, device, outcome (newest first)."""
        rows, total = identity.login_history(g.user.id, page=args["page"], limit=args["limit"])
        return {"data": rows, "meta": page_meta(args["page"], args["limit"], total)}


@blp.route("/activity-summary")
class ActivitySummary(MethodView):
    @login_required
    @blp.response(200, envelope_of(ActivitySummarySchema))
    @blp.doc(security=SECURITY)
    def get(self):
        """Counts over the login history and open sessions."""
        return {"data": identity.activity_summary(g.user)}


class ErasureRequestSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    reason = fields.String(allow_none=True)
    requested_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)
    decision_note = fields.String(allow_none=True)
    #: What an erasure keeps, and why.
    retained = fields.Function(lambda _row: gdpr.RETAINED)


class DataArchiveSchema(Schema):
    id = fields.String(metadata={"description": "Random id of the archive"})
    status = fields.String()
    size_bytes = fields.Integer(allow_none=True)
    created_at = fields.String()
    ready_at = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True)
    downloaded_at = fields.String(allow_none=True)


class ErasureArgs(Schema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=500))


@blp.route("/data-export")
class DataExport(MethodView):
    @player_required
    @blp.response(200)
    @blp.doc(security=SECURITY)
    def get(self):
        """Everything held about the player as one JSON document (GDPR art. 15/20; audited).

        ``tables`` holds the rows of every exported table; ``withheld_columns`` names secrets
        left out; ``excluded_tables`` says which tables are not handed out and why."""
        return {"success": True, "data": gdpr.export(g.user)}

    @player_required
    @blp.response(202, envelope_of(DataArchiveSchema))
    @blp.doc(security=SECURITY)
    def post(self):
        """Ask for the same data as a ZIP archive built in the background (``export.json`` +
        one file per table); a notification says when it is ready. Download it once within
        ``GDPR_ARCHIVE_TTL_HOURS``. Asking again while one is coming answers that one."""
        return {"data": archive.archive_json(archive.request(g.user))}, 202


@blp.route("/data-export/archives/<string:archive_id>")
class DataArchive(MethodView):
    @player_required
    @blp.response(200, envelope_of(DataArchiveSchema))
    @blp.doc(security=SECURITY)
    def get(self, archive_id):
        """An archive's state (queued, ready, downloaded, failed, expired)."""
        return {"data": archive.archive_json(archive.get_for(g.user, archive_id))}


@blp.route("/data-export/archives/<string:archive_id>/download")
class DataArchiveDownload(MethodView):
    @player_required
    @blp.doc(
        security=SECURITY,
        responses={
            "200": {
                "description": "The ZIP archive",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    @blp.alt_response(410, schema=ErrorSchema, description="Downloaded already, or expired")
    def get(self, archive_id):
        """The ZIP, once: the file is deleted as it is handed over."""
        name, data = archive.download(g.user, archive_id)
        response = make_response(data)
        response.headers["Content-Type"] = "application/zip"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        response.headers["Cache-Control"] = "no-store"
        return response


@blp.route("/erasure-request")
class Erasure(MethodView):
    @player_required
    @blp.arguments(ErasureArgs)
    @blp.response(202, envelope_of(ErasureRequestSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Ask for erasure (staff approve it). Refused (409) with a positive balance or an
        open withdrawal; asking again answers the pending request."""
        row = gdpr.request_erasure(g.user, args.get("reason"))
        return {"data": row}, 202


class CloseArgs(Schema):
    reason = fields.String(required=True, validate=validate.OneOf(closure.CLOSURE_REASONS))
    comment = fields.String(allow_none=True, validate=validate.Length(max=400))
    password = fields.String(allow_none=True, validate=validate.Length(max=256))


class ClosedSchema(Schema):
    status = fields.String()
    closed_at = fields.DateTime()
    reason = fields.String()
    #: When the player may reopen by signing in with ``reopen: true``.
    reopenable_at = fields.DateTime(allow_none=True)


@blp.route("/close")
class Close(MethodView):
    @player_required
    @blp.arguments(CloseArgs)
    @blp.response(200, envelope_of(ClosedSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Close the account (not a self-exclusion: see /api/responsible-gaming). Password
        required; refused (409) with a balance or an open withdrawal; every session ends."""
        user = closure.close_account(
            g.user,
            reason=args["reason"],
            password=args.get("password"),
            comment=args.get("comment"),
        )
        return {
            "data": {
                "status": user.status,
                "closed_at": user.closed_at,
                "reason": args["reason"],
                "reopenable_at": closure.reopenable_at(user),
            }
        }


# --- addresses and profile picture -------------------------------------------------------------


class AddressSchema(Schema):
    id = fields.Integer()
    label = fields.String(allow_none=True)
    line1 = fields.String()
    line2 = fields.String(allow_none=True)
    city = fields.String()
    region = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    country = fields.String()
    is_default = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class AddressArgs(Schema):
    label = fields.String(allow_none=True, validate=validate.Length(max=50))
    line1 = fields.String(required=True, validate=validate.Length(min=1, max=200))
    line2 = fields.String(allow_none=True, validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=1, max=100))
    region = fields.String(allow_none=True, validate=validate.Length(max=100))
    postal_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    country = fields.String(required=True, validate=validate.Length(equal=2))
    is_default = fields.Boolean(load_default=False)


class AddressChangeArgs(Schema):
    """Only the fields given change; ``is_default: true`` makes it the default."""

    label = fields.String(allow_none=True, validate=validate.Length(max=50))
    line1 = fields.String(validate=validate.Length(min=1, max=200))
    line2 = fields.String(allow_none=True, validate=validate.Length(max=200))
    city = fields.String(validate=validate.Length(min=1, max=100))
    region = fields.String(allow_none=True, validate=validate.Length(max=100))
    postal_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    country = fields.String(validate=validate.Length(equal=2))
    is_default = fields.Boolean()


@blp.route("/addresses")
class Addresses(MethodView):
    @player_required
    @blp.response(200, envelope_of(AddressSchema, many=True))
    @blp.doc(security=SECURITY)
    def get(self):
        """The player's postal addresses, the default first."""
        return {"data": addresses.addresses_of(g.user.id)}

    @player_required
    @blp.arguments(AddressArgs)
    @blp.response(201, envelope_of(AddressSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """Add an address (at most 10; the first becomes the default); audited."""
        make_default = args.pop("is_default", False)
        return {"data": addresses.add_address(g.user, args, make_default=make_default)}, 201


@blp.route("/addresses/<int:address_id>")
class Address(MethodView):
    @player_required
    @blp.arguments(AddressChangeArgs)
    @blp.response(200, envelope_of(AddressSchema))
    @blp.doc(security=SECURITY)
    def put(self, args, address_id: int):
        """Change an address, or make it the default (``is_default: true``); audited."""
        make_default = bool(args.pop("is_default", False))
        row = addresses.update_address(g.user, address_id, args, make_default=make_default)
        return {"data": row}

    @player_required
    @blp.response(204)
    @blp.doc(security=SECURITY)
    def delete(self, address_id: int):
        """Remove an address (the oldest other one becomes the default); audited."""
        addresses.delete_address(g.user, address_id)


class AvatarSchema(Schema):
    avatar_url = fields.String(allow_none=True)


def _avatar_body_limit() -> int:
    return avatars.max_bytes() + 64 * 1024  # the picture plus the multipart framing


@blp.route("/avatar")
class Avatar(MethodView):
    @body_limit(_avatar_body_limit)
    @player_required
    @blp.doc(
        security=SECURITY,
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
    @blp.response(200, envelope_of(AvatarSchema))
    def put(self):
        """Upload the profile picture (JPEG, PNG or WebP, at most AVATAR_MAX_BYTES and 4096 px a
        side): re-encoded as a metadata-free PNG of at most 512 px, served from
        /media/avatars/...; audited."""
        upload = request.files.get("file")
        if upload is None:
            raise ValidationError.field("file", "A file is required")
        data = upload.stream.read(avatars.max_bytes() + 1)
        user = avatars.set_avatar(g.user, data)
        return {"data": {"avatar_url": user.avatar_url}}

    @player_required
    @blp.response(200, envelope_of(AvatarSchema))
    @blp.doc(security=SECURITY)
    def delete(self):
        """Remove the profile picture."""
        avatars.remove_avatar(g.user)
        return {"data": {"avatar_url": None}}
