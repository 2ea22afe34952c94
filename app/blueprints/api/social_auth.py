"""Sign-in through outside identities: OpenID Connect issuers and Telegram
(``/api/auth/oidc/*``, ``/api/auth/telegram*``, ``/api/auth/external/exchange``) and the
player's linked identities (``/api/user/identities``). Rules: ``app.identity.external``."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import current_app, g, redirect, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields, validate

from app.blueprints.api.auth import token_answer
from app.blueprints.api.identity_common import TokenEnvelope, client_info, limit_blueprint
from app.core import redirects
from app.core.errors import AppError, ValidationError
from app.core.schemas import envelope_of
from app.identity import external, oidc
from app.identity.auth import player_required

blp = Blueprint(
    "social_auth", __name__, url_prefix="/api", description="Sign-in with OpenID Connect, Telegram"
)
limit_blueprint(blp, "RATE_LIMIT_AUTH")


class IdentityProviderSchema(Schema):
    name = fields.String()
    label = fields.String()


class StartArgs(Schema):
    return_to = fields.String(
        load_default="/",
        validate=validate.Length(max=500),
        metadata={"description": "Where the player app wants the result (allow-listed)"},
    )


class CallbackArgs(Schema):
    class Meta:
        unknown = INCLUDE  # issuers add their own parameters (session_state, iss, scope)

    state = fields.String(load_default=None, validate=validate.Length(max=200))
    code = fields.String(load_default=None, validate=validate.Length(max=2000))
    error = fields.String(load_default=None, validate=validate.Length(max=200))


class ExchangeArgs(Schema):
    login_code = fields.String(required=True, validate=validate.Length(min=20, max=100))
    auth_code = fields.String(load_default=None, validate=validate.Length(max=10))


class TelegramPayload(Schema):
    """The fields the Telegram Login widget hands the page, unchanged."""

    id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**53))
    first_name = fields.String(load_default=None, validate=validate.Length(max=256))
    last_name = fields.String(load_default=None, validate=validate.Length(max=256))
    username = fields.String(load_default=None, validate=validate.Length(max=64))
    photo_url = fields.String(load_default=None, validate=validate.Length(max=1000))
    auth_date = fields.Integer(required=True, validate=validate.Range(min=0, max=2**40))
    hash = fields.String(required=True, validate=validate.Length(equal=64))


class TelegramLoginArgs(TelegramPayload):
    auth_code = fields.String(load_default=None, validate=validate.Length(max=10))


class TelegramRegisterArgs(Schema):
    telegram = fields.Nested(TelegramPayload, required=True)
    email = fields.Email(required=True, validate=validate.Length(max=255))
    username = fields.String(
        load_default=None,
        validate=[
            validate.Length(min=3, max=30),
            validate.Regexp(r"^[A-Za-z0-9_.-]+$", error="Letters, digits, _ . - only"),
        ],
    )


class IdentitySchema(Schema):
    id = fields.Integer()
    provider = fields.String()
    display = fields.String(allow_none=True)
    created_at = fields.String()
    last_used_at = fields.String(allow_none=True)


def _widget(args: dict) -> dict:
    """The widget's fields as Telegram signed them (absent ones left out)."""
    keys = ("id", "first_name", "last_name", "username", "photo_url", "auth_date", "hash")
    return {k: args[k] for k in keys if args.get(k) is not None}


def _identity_json(link) -> dict:
    return {
        "id": link.id,
        "provider": link.provider,
        "display": link.display,
        "created_at": link.created_at.isoformat(),
        "last_used_at": link.last_used_at.isoformat() if link.last_used_at else None,
    }


def _callback_url(provider: str) -> str:
    path = url_for("social_auth.OidcCallback", provider=provider)
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


@blp.route("/auth/oidc/providers")
class OidcProviders(MethodView):
    @blp.response(200, envelope_of(IdentityProviderSchema, many=True))
    def get(self):
        """The identity providers a player may sign in with (configured by the operator)."""
        return {"data": oidc.providers()}


@blp.route("/auth/oidc/<string:provider>/start")
class OidcStart(MethodView):
    @blp.arguments(StartArgs, location="query")
    @blp.response(302)
    def get(self, args, provider):
        """Redirect to the issuer (authorization code + PKCE, fresh state and nonce)."""
        if not redirects.is_allowed(args["return_to"]):
            raise ValidationError.field("return_to", redirects.NOT_ALLOWED)
        url = external.oidc_start(
            provider, redirect_uri=_callback_url(provider), return_to=args["return_to"]
        )
        return redirect(url, 302)


@blp.route("/auth/oidc/<string:provider>/callback")
class OidcCallback(MethodView):
    @blp.arguments(CallbackArgs, location="query")
    @blp.response(302)
    def get(self, args, provider):
        """The issuer sends the player back here; they go on to ``return_to`` with
        ``#login_code=`` (exchange it at ``/api/auth/external/exchange``) or ``#error=``."""
        if args.get("error"):
            # The player declined at the issuer: nothing was granted, the state is spent.
            args["code"] = None
        try:
            code, return_to = external.oidc_callback(
                provider,
                state=args.get("state"),
                code=args.get("code"),
                redirect_uri=_callback_url(provider),
            )
        except AppError as exc:
            back = getattr(exc, "return_to", None)
            if back is None or exc.status >= 500:
                raise  # no genuine state (or the issuer is down): answer here
            target = redirects.absolute(back)
            return redirect(f"{target}#{urlencode({'error': exc.message})}", 302)
        target = redirects.absolute(return_to)
        return redirect(f"{target}#{urlencode({'login_code': code})}", 302)


@blp.route("/auth/external/exchange")
class Exchange(MethodView):
    @blp.arguments(ExchangeArgs)
    @blp.response(200, TokenEnvelope)
    def post(self, args):
        """The one-time login code of an outside sign-in for a session (+ ``auth_code`` when
        the player has 2FA on; the code stays usable until it expires if that is missing)."""
        result = external.handoff_exchange(
            args["login_code"], auth_code=args["auth_code"], client=client_info()
        )
        return token_answer(result.token, "Logged in successfully", result)


@blp.route("/auth/telegram")
class TelegramLogin(MethodView):
    @blp.arguments(TelegramLoginArgs)
    @blp.response(200, TokenEnvelope)
    def post(self, args):
        """Sign in with the Telegram Login widget's payload (linked accounts only)."""
        result = external.telegram_login(
            _widget(args), auth_code=args["auth_code"], client=client_info()
        )
        return token_answer(result.token, "Logged in successfully", result)


@blp.route("/auth/telegram/register")
class TelegramRegister(MethodView):
    @blp.arguments(TelegramRegisterArgs)
    @blp.response(201, TokenEnvelope)
    def post(self, args):
        """Create a player from a Telegram sign-in and an e-mail (verified by mail), signed
        in at once."""
        user = external.telegram_register(
            _widget(args["telegram"]), email=args["email"], username=args["username"]
        )
        result = external.accounts.external_login(user.id, external.TELEGRAM, client=client_info())
        return token_answer(result.token, "Registered with Telegram", result), 201


@blp.route("/user/identities")
class Identities(MethodView):
    @player_required
    @blp.response(200, envelope_of(IdentitySchema, many=True))
    def get(self):
        """The outside identities that sign in to this account."""
        return {"data": [_identity_json(link) for link in external.links_of(g.user)]}


@blp.route("/user/identities/telegram")
class LinkTelegram(MethodView):
    @player_required
    @blp.arguments(TelegramPayload)
    @blp.response(201, envelope_of(IdentitySchema))
    def post(self, args):
        """Link a Telegram account (the widget's payload) to the signed-in player."""
        return {"data": _identity_json(external.telegram_link(g.user, _widget(args)))}, 201


@blp.route("/user/identities/<int:link_id>")
class Unlink(MethodView):
    @player_required
    @blp.response(204)
    def delete(self, link_id):
        """Unlink an outside identity (the password and other identities keep working)."""
        external.unlink(g.user, link_id)
