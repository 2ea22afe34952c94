"""Player identity: ``/api/auth/*`` (captcha, register, login, refresh, logout, me, passwords)."""

from __future__ import annotations

from flask import current_app, g
from flask.views import MethodView
from flask_jwt_extended import get_jwt
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.identity_common import (
    LoginArgs,
    MessageSchema,
    ProfileSchema,
    RefreshArgs,
    TokenEnvelope,
    client_info,
    limit_blueprint,
)
from app.blueprints.api.responsible_gaming import PromptSchema
from app.compliance import responsible_gaming as rg
from app.core.errors import AuthenticationError, ValidationError
from app.core.extensions import client_ip, limiter
from app.core.schemas import envelope_of
from app.identity import accounts as identity
from app.identity import captcha, otp, otp_signup, verification
from app.identity.auth import login_optional, login_required

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Player identity")
limit_blueprint(blp, "RATE_LIMIT_AUTH")


class CaptchaSchema(Schema):
    id = fields.String(required=True)
    svg = fields.String(required=True)


class RegisterArgs(Schema):
    username = fields.String(
        required=True,
        validate=[
            validate.Length(min=3, max=30),
            validate.Regexp(r"^[A-Za-z0-9_.-]+$", error="Letters, digits, _ . - only"),
        ],
    )
    email = fields.Email(required=True, validate=validate.Length(max=255))
    password = fields.String(required=True, validate=validate.Length(max=256))
    captcha_id = fields.String(allow_none=True, validate=validate.Length(max=100))
    captcha_text = fields.String(allow_none=True, validate=validate.Length(max=20))
    ref_code = fields.String(allow_none=True, validate=validate.Length(max=32))
    #: Opt-in to marketing messages; absent = no.
    marketing_consent = fields.Boolean(load_default=False)


class RegisteredUserSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String()


class RegistrationSchema(Schema):
    qr_code = fields.String(required=True)
    auth_secret = fields.String(required=True)
    user = fields.Nested(RegisteredUserSchema)
    #: The deposit-limit prompt (UKGC RTS 12A): answer it at POST
    #: /api/responsible-gaming/deposit-limit-prompt before the first deposit.
    deposit_limit_prompt = fields.Nested(PromptSchema)


class RegisteredEnvelope(Schema):
    success = fields.Constant(True)
    message = fields.String()
    data = fields.Nested(RegistrationSchema)


class MeSchema(ProfileSchema):
    permissions = fields.Function(lambda user: sorted(user.role.permissions or []))


class ForgotArgs(Schema):
    email = fields.String(required=True, validate=validate.Length(max=255))


class ResetArgs(Schema):
    token = fields.String(required=True, validate=validate.Length(max=256))
    new_password = fields.String(required=True, validate=validate.Length(max=256))
    confirm_password = fields.String(allow_none=True, validate=validate.Length(max=256))


class MessageEnvelope(Schema):
    success = fields.Constant(True)
    message = fields.String()
    data = fields.Nested(MessageSchema)


def _message(text: str) -> dict:
    return {"message": text, "data": {"message": text}}


def token_answer(token: dict, message: str, result=None) -> dict:
    answer = {"message": message, "token": token}
    if result is not None:
        answer["previous_login_at"] = result.previous_login_at
        answer["previous_login_ip"] = result.previous_login_ip
        if result.recovery_codes:
            answer["recovery_codes"] = result.recovery_codes
    return answer


@blp.route("/captcha")
class Captcha(MethodView):
    @blp.response(200, envelope_of(CaptchaSchema))
    def get(self):
        """A new one-use captcha (expires after CAPTCHA_TTL seconds)."""
        challenge = captcha.new_challenge()
        return {"data": {"id": challenge.id, "svg": challenge.svg}}

    @blp.response(200, envelope_of(CaptchaSchema))
    def post(self):
        """Same as GET (the guide documents both)."""
        return self.get()


@blp.route("/register")
class Register(MethodView):
    @blp.arguments(RegisterArgs)
    @blp.response(201, RegisteredEnvelope)
    def post(self, args):
        """Create a player account; answers the TOTP secret to enrol (2FA not yet enabled)."""
        result = identity.register(client=client_info(), **args)
        user = result.user
        return {
            "message": "Registered Successfully",
            "data": {
                "qr_code": result.qr_code,
                "auth_secret": result.auth_secret,
                "user": {"id": user.id, "username": user.username, "email": user.email},
                "deposit_limit_prompt": rg.deposit_limit_prompt(user.id),
            },
        }


class PlayerLoginArgs(LoginArgs):
    #: Reopen an account the player closed themselves (after ``account_reopen_cooling_days``,
    #: never while self-excluded); the reopening holds only if the sign-in succeeds.
    reopen = fields.Boolean(load_default=False)


@blp.route("/login")
class Login(MethodView):
    @blp.arguments(PlayerLoginArgs)
    @blp.response(200, TokenEnvelope)
    def post(self, args):
        """Log in with username or e-mail (+ ``auth_code`` when 2FA is on)."""
        result = identity.login(
            args.get("username") or args.get("email"),
            args["password"],
            auth_code=args.get("auth_code"),
            portal=identity.PLAYER_PORTAL,
            client=client_info(),
            captcha_id=args.get("captcha_id"),
            captcha_text=args.get("captcha_text"),
            reopen=args["reopen"],
        )
        return token_answer(result.token, "Logged in successfully", result)


@blp.route("/refresh")
class Refresh(MethodView):
    @blp.arguments(RefreshArgs)
    @blp.response(200, TokenEnvelope)
    def post(self, args):
        """Spend a refresh token for a new pair (replaying a spent one revokes the session)."""
        token = identity.refresh(args["refresh_token"], portal=identity.PLAYER_PORTAL)
        return token_answer(token, "Token refreshed")


@blp.route("/logout")
class Logout(MethodView):
    @login_required
    @blp.response(200, MessageEnvelope)
    @blp.doc(security=[{"bearerAuth": []}])
    def post(self):
        """End this session: its access and refresh tokens stop working now."""
        from flask import g

        identity.logout(g.user, get_jwt())
        return _message("Logged out")


@blp.route("/me")
class Me(MethodView):
    @login_required
    @blp.response(200, envelope_of(MeSchema))
    @blp.doc(security=[{"bearerAuth": []}])
    def get(self):
        """The account behind the access token."""
        from flask import g

        return {"data": g.user}


@blp.route("/forgot-password")
class ForgotPassword(MethodView):
    @blp.arguments(ForgotArgs)
    @blp.response(200, MessageEnvelope)
    def post(self, args):
        """Mail a one-time reset link (same answer whether or not the address is known)."""
        identity.forgot_password(args["email"])
        return _message("If the address belongs to an account, a reset link has been sent")


@blp.route("/reset-password")
class ResetPassword(MethodView):
    @blp.arguments(ResetArgs)
    @blp.response(200, MessageEnvelope)
    def post(self, args):
        """Choose a new password with the mailed token; every session ends."""
        identity.reset_password(args["token"], args["new_password"], args.get("confirm_password"))
        return _message("Password has been reset; log in with the new password")


class VerifyEmailArgs(Schema):
    #: The link's token (no login needed) ...
    token = fields.String(allow_none=True, validate=validate.Length(max=256))
    #: ... or the 6-digit code from the same mail (with the player's bearer token).
    code = fields.String(allow_none=True, validate=validate.Regexp(r"^\d{6}$"))


@blp.route("/verify-email")
class VerifyEmail(MethodView):
    @login_optional
    @blp.arguments(VerifyEmailArgs)
    @blp.response(200, MessageEnvelope)
    def post(self, args):
        """Verify the e-mail address with the mailed link token or 6-digit code (single use)."""
        if args.get("token"):
            verification.verify_token(args["token"])
        elif args.get("code"):
            if g.user is None:
                raise AuthenticationError("Log in to verify with a code (or use the link)")
            verification.verify_code(g.user, args["code"])
        else:
            raise ValidationError.field("token", "Send the link's token or the 6-digit code")
        return _message("E-mail address verified")


@blp.route("/verify-email/resend")
class VerifyEmailResend(MethodView):
    @login_required
    @blp.response(200, MessageEnvelope)
    @blp.doc(security=[{"bearerAuth": []}])
    def post(self):
        """Mail a new verification link and code (spaced and capped per day: 429 beyond)."""
        verification.resend(g.user)
        return _message("A new verification e-mail has been sent")


# --- OTP sign-up / sign-in and availability checks (docs/identity.md) -----------------------

USERNAME_RULES = RegisterArgs._declared_fields["username"].validators


class OtpRequestArgs(Schema):
    email = fields.Email(allow_none=True, validate=validate.Length(max=255))
    phone = fields.String(allow_none=True, validate=validate.Length(max=32))


class OtpVerifyArgs(OtpRequestArgs):
    code = fields.String(required=True, validate=validate.Length(max=16))
    #: Sign-up only (a code for a new address): the account's username, optional password.
    username = fields.String(allow_none=True, validate=USERNAME_RULES)
    password = fields.String(allow_none=True, validate=validate.Length(max=256))
    marketing_consent = fields.Boolean(load_default=False)
    ref_code = fields.String(allow_none=True, validate=validate.Length(max=32))
    #: Sign-in of an account with TOTP on: the authenticator's code.
    auth_code = fields.String(allow_none=True, validate=validate.Length(max=16))


class OtpVerifiedEnvelope(TokenEnvelope):
    created = fields.Boolean(metadata={"description": "true: a new account was opened"})
    user = fields.Nested(RegisteredUserSchema)


class SignupModeSchema(Schema):
    mode = fields.String(metadata={"description": "password | otp | both"})


class UsernameArgs(Schema):
    username = fields.String(required=True, validate=validate.Length(max=64))


class UsernameAvailabilitySchema(Schema):
    username = fields.String()
    available = fields.Boolean()


class EmailCheckArgs(Schema):
    email = fields.String(required=True, validate=validate.Length(max=255))


class EmailCheckSchema(Schema):
    email = fields.String(metadata={"description": "normalised (lower case)"})
    acceptable = fields.Boolean()
    message = fields.String()


class PhoneCheckArgs(Schema):
    phone = fields.String(required=True, validate=validate.Length(max=32))


class PhoneCheckSchema(Schema):
    phone = fields.String(metadata={"description": "E.164"})
    acceptable = fields.Boolean()
    message = fields.String()


def _destination(args) -> otp_signup.Destination:
    return otp_signup.destination(args.get("email"), args.get("phone"), client_info().country)


@blp.route("/signup-mode")
class SignupMode(MethodView):
    @blp.response(200, envelope_of(SignupModeSchema))
    def get(self):
        """How accounts are opened here: ``password``, ``otp`` or ``both`` (operator setting)."""
        return {"data": {"mode": otp_signup.mode()}}


@blp.route("/otp/request")
class OtpRequest(MethodView):
    @blp.arguments(OtpRequestArgs)
    @blp.response(200, MessageEnvelope)
    def post(self, args):
        """Send a one-time code to an e-mail address or phone (sign-up, or sign-in when the
        address has an account); the answer is the same either way. 429 past the limits."""
        outgoing = otp_signup.request_code(_destination(args), ip=client_info().ip)
        otp.deliver(outgoing)
        return _message("If this address can be used, a code has been sent to it")


@blp.route("/otp/verify")
class OtpVerify(MethodView):
    @blp.arguments(OtpVerifyArgs)
    @blp.response(200, OtpVerifiedEnvelope)
    def post(self, args):
        """Spend the code: opens the account (with ``username``) or signs it in."""
        result = otp_signup.verify(
            _destination(args),
            args["code"],
            username=args.get("username"),
            password=args.get("password"),
            marketing_consent=args["marketing_consent"],
            ref_code=args.get("ref_code"),
            auth_code=args.get("auth_code"),
            client=client_info(),
        )
        user = result.login.user
        answer = token_answer(
            result.login.token,
            "Account created" if result.created else "Logged in successfully",
            result.login,
        )
        answer["created"] = result.created
        answer["user"] = {"id": user.id, "username": user.username, "email": user.email}
        return answer


def _availability_limit() -> str:
    return current_app.config["RATE_LIMIT_AVAILABILITY"]


_check_limit = limiter.shared_limit(_availability_limit, scope="availability", key_func=client_ip)


@blp.route("/check/username")
class CheckUsername(MethodView):
    decorators = [_check_limit]

    @blp.arguments(UsernameArgs)
    @blp.response(200, envelope_of(UsernameAvailabilitySchema))
    def post(self, args):
        """Is this username free? (Registration answers the same: usernames are public.)"""
        name = args["username"].strip()
        return {"data": {"username": name, "available": identity.username_available(name)}}


@blp.route("/check/email")
class CheckEmail(MethodView):
    decorators = [_check_limit]

    @blp.arguments(EmailCheckArgs)
    @blp.response(200, envelope_of(EmailCheckSchema))
    def post(self, args):
        """Can this address be used to sign up? Says whether it is well formed, never whether
        an account has it: the code sent to it tells its owner (docs/identity.md)."""
        dest = otp_signup.destination(args["email"], None, None)
        return {
            "data": {
                "email": dest.value,
                "acceptable": True,
                "message": "A code will be sent to this address",
            }
        }


@blp.route("/check/phone")
class CheckPhone(MethodView):
    decorators = [_check_limit]

    @blp.arguments(PhoneCheckArgs)
    @blp.response(200, envelope_of(PhoneCheckSchema))
    def post(self, args):
        """Is this a valid phone number (answered in E.164)? Never whether an account has it."""
        dest = otp_signup.destination(None, args["phone"], client_info().country)
        return {
            "data": {
                "phone": dest.value,
                "acceptable": True,
                "message": "A code will be texted to this number",
            }
        }
