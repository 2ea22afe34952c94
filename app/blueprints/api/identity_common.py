"""Request-side helpers shared by the identity blueprints: client info, rate-limit keys,
the network access gate, and the schemas several of them answer with."""

from __future__ import annotations

import json
import zoneinfo

from flask import Flask, current_app, request
from flask_jwt_extended import decode_token
from marshmallow import Schema, ValidationError, fields, pre_load, validate

from app.compliance import access_rules
from app.core.extensions import client_ip, limiter
from app.identity.accounts import ClientInfo

FINGERPRINT_HEADER = "X-Device-Fingerprint"
#: Same meaning; some player apps send this name.
FINGERPRINT_ALIAS = "X-Device-Id"


def client_info() -> ClientInfo:
    country = (request.headers.get(current_app.config["COUNTRY_HEADER"]) or "").strip().upper()
    return ClientInfo(
        ip=client_ip(),
        user_agent=request.user_agent.string or None,
        device_fingerprint=(
            request.headers.get(FINGERPRINT_HEADER) or request.headers.get(FINGERPRINT_ALIAS) or ""
        )[:128]
        or None,
        country=country if len(country) == 2 and country.isalpha() else None,
    )


#: Sign-ins are not rate limited per login name: a botnet's requests would make the victim's
#: own sign-in a 429 (a lockout by another name). The name's failures across addresses ask
#: for a captcha instead (app.identity.throttle); the per-address limit stays.
_LOGIN_PATHS = frozenset({"/api/auth/login", "/api/admin/auth/login"})


def user_rate_key() -> str | None:
    """The user a request is about: the bearer token's subject, else the login being tried
    (except on the sign-in endpoints)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        try:
            return "user:" + str(decode_token(header[7:], allow_expired=True)["sub"])
        except Exception:  # an unreadable token is refused later; the IP limit still applies
            return None
    if request.path in _LOGIN_PATHS:
        return None
    body = request.get_json(silent=True) if request.is_json else None
    if isinstance(body, dict):
        name = body.get("username") or body.get("email")
        if isinstance(name, str) and name.strip():
            return "login:" + name.strip().lower()[:255]
    return None


def limit_blueprint(blp, config_key: str) -> None:
    """One rate-limit category on a blueprint, counted per IP and per user."""

    def value() -> str:
        return current_app.config[config_key]

    limiter.limit(value, key_func=client_ip, scope=f"{config_key}:ip")(blp)
    limiter.limit(
        value,
        key_func=lambda: user_rate_key() or "-",
        exempt_when=lambda: user_rate_key() is None,
        scope=f"{config_key}:user",
    )(blp)


_GATE_EXEMPT = (
    "/api/provider-callback",
    "/api/payment/webhook",
    "/api/docs",
    "/api/openapi.json",
    "/api/status",
)


def init_access_gate(app: Flask) -> None:
    """IP block/allow lists and restricted countries for the JSON API (settings-driven)."""

    @app.before_request
    def _network_gate():
        path = request.path
        if request.method == "OPTIONS" or not path.startswith("/api/"):
            return
        if path.startswith(_GATE_EXEMPT):
            return
        info = client_info()
        if path.startswith("/api/admin"):
            access_rules.check_staff(info.ip)
        else:
            access_rules.check_player(info.ip, info.country)


class RoleSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()


class TokenSchema(Schema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)
    role = fields.Nested(RoleSchema)


class TokenEnvelope(Schema):
    success = fields.Constant(True)
    message = fields.String()
    token = fields.Nested(TokenSchema, required=True)
    previous_login_at = fields.DateTime(allow_none=True)
    previous_login_ip = fields.String(allow_none=True)
    #: Staff only, in the answer of the login that enrolled TOTP: one-time recovery codes,
    #: shown this once (docs/security.md).
    recovery_codes = fields.List(fields.String())


class MessageSchema(Schema):
    message = fields.String()


class LoginArgs(Schema):
    username = fields.String(validate=validate.Length(max=255))
    email = fields.String(validate=validate.Length(max=255))
    password = fields.String(required=True, validate=validate.Length(max=256))
    auth_code = fields.String(allow_none=True, validate=validate.Length(max=16))
    #: Needed only when the answer said ``captcha_required`` (a name many addresses failed
    #: with; docs/security.md): a challenge from ``GET /api/auth/captcha`` and its text.
    captcha_id = fields.String(allow_none=True, validate=validate.Length(max=100))
    captcha_text = fields.String(allow_none=True, validate=validate.Length(max=20))

    @pre_load
    def _one_login(self, data, **kwargs):
        if isinstance(data, dict) and not (data.get("username") or data.get("email")):
            raise ValidationError({"username": ["A username or e-mail is required"]})
        return data


class RefreshArgs(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(max=4096))


class ProfileSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String()
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    phone_number = fields.Function(lambda user: user.phone)
    date_of_birth = fields.String(allow_none=True)
    nationality = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    postal_code = fields.String(allow_none=True)
    gender = fields.String(allow_none=True)
    timezone = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    currency = fields.String()
    preferences = fields.Dict(allow_none=True)
    marketing_consent = fields.Boolean()
    marketing_consent_at = fields.DateTime(allow_none=True)
    status = fields.String()
    role = fields.Function(lambda user: user.role.as_json())
    kyc_status = fields.String()
    kyc_level = fields.Integer()
    referral_code = fields.String(allow_none=True)
    two_factor_enabled = fields.Boolean(attribute="totp_enabled")
    sms_two_factor_enabled = fields.Boolean(attribute="sms_2fa_enabled")
    email_verified = fields.Function(lambda user: user.email_verified_at is not None)
    email_verified_at = fields.DateTime(allow_none=True)
    has_password = fields.Boolean()
    created_at = fields.DateTime()
    last_login_at = fields.DateTime(allow_none=True)


#: A profile edit is a few short fields and small preferences: anything near this is abuse.
PROFILE_MAX_BODY_BYTES = 16 * 1024
#: ``preferences``: what a player app keeps (theme, notification switches, favourites).
PREFERENCES_MAX_BYTES = 4 * 1024
PREFERENCES_MAX_KEYS = 100
PREFERENCES_MAX_DEPTH = 4
PREFERENCES_MAX_KEY_LENGTH = 64


def _bounded_preferences(value: dict) -> None:
    """At most PREFERENCES_MAX_BYTES as compact JSON, PREFERENCES_MAX_KEYS keys in all,
    PREFERENCES_MAX_DEPTH levels of objects/arrays, keys of at most 64 characters."""
    keys = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list) and depth > PREFERENCES_MAX_DEPTH:
            raise ValidationError(f"At most {PREFERENCES_MAX_DEPTH} levels of nesting")
        if isinstance(item, dict):
            keys += len(item)
            if keys > PREFERENCES_MAX_KEYS:
                raise ValidationError(f"At most {PREFERENCES_MAX_KEYS} keys")
            for key, inner in item.items():
                if len(str(key)) > PREFERENCES_MAX_KEY_LENGTH:
                    raise ValidationError(
                        f"Keys have at most {PREFERENCES_MAX_KEY_LENGTH} characters"
                    )
                stack.append((inner, depth + 1))
        elif isinstance(item, list):
            stack.extend((inner, depth + 1) for inner in item)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > PREFERENCES_MAX_BYTES:
        raise ValidationError(f"At most {PREFERENCES_MAX_BYTES} bytes of preferences")


def _timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError("Not an IANA time zone (e.g. Europe/Malta)")


class ProfileEditFields(Schema):
    """Fields a person's own profile may take; anything else in the body is refused."""

    #: Named so that a client trying them gets a precise refusal, not "unknown field".
    PROTECTED = (
        "balance",
        "bonus_balance",
        "role",
        "role_id",
        "roles",
        "status",
        "status_reason",
        "kyc",
        "kyc_status",
        "kyc_level",
        "email",
        "username",
        "password",
        "password_hash",
        "currency",
        "id",
        "agent_id",
        "referred_by_id",
        "totp_enabled",
        "is_2fa_enabled",
        "verification_level",
    )

    first_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    last_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    phone = fields.String(
        allow_none=True,
        validate=validate.Regexp(r"^\+?[0-9 ()-]{6,32}$", error="Not a phone number"),
    )
    date_of_birth = fields.String(allow_none=True, validate=validate.Length(equal=10))
    nationality = fields.String(allow_none=True, validate=validate.Length(max=64))
    country = fields.String(
        allow_none=True, validate=validate.Regexp(r"^[A-Z]{2}$", error="ISO-3166 alpha-2 code")
    )
    city = fields.String(allow_none=True, validate=validate.Length(max=100))
    address = fields.String(allow_none=True, validate=validate.Length(max=255))
    postal_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    gender = fields.String(
        allow_none=True, validate=validate.OneOf(["male", "female", "other", "undisclosed"])
    )
    timezone = fields.String(allow_none=True, validate=_timezone)
    language = fields.String(
        allow_none=True, validate=validate.Regexp(r"^[a-z]{2}(-[A-Z]{2})?$", error="e.g. en, pt-BR")
    )
    preferences = fields.Dict(
        allow_none=True,
        keys=fields.String(),
        validate=_bounded_preferences,
        metadata={
            "description": f"At most {PREFERENCES_MAX_BYTES} bytes as JSON, "
            f"{PREFERENCES_MAX_KEYS} keys, {PREFERENCES_MAX_DEPTH} levels"
        },
    )
    #: Opt-in to marketing; the change time is recorded (``marketing_consent_at``).
    marketing_consent = fields.Boolean()

    @pre_load
    def _refuse_protected(self, data, **kwargs):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "phone_number" in data:
            data.setdefault("phone", data.pop("phone_number"))
        if isinstance(data.get("country"), str):
            data["country"] = data["country"].strip().upper()
        refused = {
            name: [f"{name} cannot be changed through the profile"]
            for name in data
            if name in self.PROTECTED
        }
        if refused:
            raise ValidationError(refused)
        return data
