"""Staff identity for the JSON API: ``/api/admin/auth/*`` (TOTP mandatory for Admin/Manager)."""

from __future__ import annotations

from functools import wraps

from flask import g
from flask.views import MethodView
from flask_jwt_extended import get_jwt
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.auth import MeSchema, MessageEnvelope, token_answer
from app.blueprints.api.identity_common import (
    LoginArgs,
    RefreshArgs,
    TokenEnvelope,
    client_info,
    limit_blueprint,
)
from app.core.errors import AccessDenied, AuthenticationError
from app.core.schemas import envelope_of
from app.identity import accounts as identity
from app.identity import staff_auth
from app.identity.auth import login_required

blp = Blueprint("admin_auth", __name__, url_prefix="/api/admin/auth", description="Staff identity")
limit_blueprint(blp, "RATE_LIMIT_AUTH")
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def staff_required(fn):
    """Any staff role, with a token from the staff login."""

    @wraps(fn)
    @login_required
    def wrapper(*args, **kwargs):
        if not g.user.is_staff or get_jwt().get("portal", "staff") != "staff":
            raise AccessDenied("This endpoint is for staff accounts")
        return fn(*args, **kwargs)

    return wrapper


class StaffMeSchema(MeSchema):
    session = fields.Function(lambda _user: get_jwt().get("fam"))


@blp.route("/login")
class StaffLogin(MethodView):
    @blp.arguments(LoginArgs)
    @blp.response(200, TokenEnvelope)
    def post(self, args):
        """Staff login; ``auth_code`` is mandatory for Admin and Manager (enrol on first login)."""
        result = identity.login(
            args.get("username") or args.get("email"),
            args["password"],
            auth_code=args.get("auth_code"),
            portal=identity.STAFF_PORTAL,
            client=client_info(),
            captcha_id=args.get("captcha_id"),
            captcha_text=args.get("captcha_text"),
        )
        return token_answer(result.token, "Logged in successfully", result)


@blp.route("/refresh")
class StaffRefresh(MethodView):
    @blp.arguments(RefreshArgs)
    @blp.response(200, TokenEnvelope)
    def post(self, args):
        token = identity.refresh(args["refresh_token"], portal=identity.STAFF_PORTAL)
        return token_answer(token, "Token refreshed")


@blp.route("/me")
class StaffMe(MethodView):
    @staff_required
    @blp.response(200, envelope_of(StaffMeSchema))
    @blp.doc(security=SECURITY)
    def get(self):
        return {"data": g.user}


@blp.route("/logout")
class StaffLogout(MethodView):
    @staff_required
    @blp.response(200, MessageEnvelope)
    @blp.doc(security=SECURITY)
    def post(self):
        identity.logout(g.user, get_jwt())
        return {"message": "Logged out", "data": {"message": "Logged out"}}


class RecoveryCodesArgs(Schema):
    auth_code = fields.String(required=True, validate=validate.Length(max=16))


class RecoveryCodesSchema(Schema):
    recovery_codes = fields.List(fields.String(), required=True)


@blp.route("/recovery-codes")
class StaffRecoveryCodes(MethodView):
    @staff_required
    @blp.arguments(RecoveryCodesArgs)
    @blp.response(200, envelope_of(RecoveryCodesSchema))
    @blp.doc(security=SECURITY)
    def post(self, args):
        """New one-time recovery codes (earlier ones stop working), shown this once; needs a
        current TOTP code (``auth_code``): a wrong one counts towards the lockout (401)."""
        codes = staff_auth.regenerate_recovery_codes(g.user.id, args["auth_code"])
        if codes is None:
            raise AuthenticationError("Invalid or already used two-factor code")
        return {"data": {"recovery_codes": codes}}
