"""Staff management of user accounts: ``/api/admin/users`` and network access rules."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.identity_common import ProfileSchema, limit_blueprint
from app.blueprints.api.responsible_gaming import LimitsSchema, overview_json
from app.blueprints.api.user_account import LoginEventSchema
from app.blueprints.api.user_phones import PhoneSchema
from app.blueprints.api.wallet import WalletSchema
from app.compliance import access_rules
from app.core.db import atomic
from app.core.schemas import PageArgs, envelope_of, page_meta
from app.identity import accounts as identity
from app.identity import closure, gdpr, phones, player_notes, staff_actions, staff_auth
from app.identity.auth import permission_required
from app.identity.models import PLAYER, LoginEvent, TokenFamily, User
from app.wallet import ledger as wallet

blp = Blueprint("admin_users", __name__, url_prefix="/api/admin", description="Staff: users")
limit_blueprint(blp, "RATE_LIMIT_API")
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


class UserListArgs(PageArgs):
    username = fields.String(validate=validate.Length(max=50))
    email = fields.String(validate=validate.Length(max=255))
    status = fields.String(validate=validate.Length(max=16))
    country = fields.String(validate=validate.Length(max=2))
    role = fields.String(validate=validate.Length(max=32))
    search = fields.String(validate=validate.Length(max=100))
    sort = fields.String(load_default="created_at:desc", validate=validate.Length(max=40))


class StaffUserSchema(ProfileSchema):
    role_id = fields.Integer()
    status_reason = fields.String(allow_none=True)
    status_until = fields.DateTime(allow_none=True)
    agent_id = fields.Integer(allow_none=True)
    referred_by_id = fields.Integer(allow_none=True)
    erased_at = fields.DateTime(allow_none=True)
    locked_until = fields.DateTime(allow_none=True)
    last_login_ip = fields.String(allow_none=True)
    is_2fa_enabled = fields.Function(lambda user: user.totp_enabled)


class SessionSchema(Schema):
    id = fields.String()
    portal = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    device_fingerprint = fields.String(allow_none=True)


class StaffUserDetailSchema(StaffUserSchema):
    login_history = fields.List(fields.Nested(LoginEventSchema))
    active_sessions = fields.List(fields.Nested(SessionSchema))
    wallets = fields.List(
        fields.Nested(WalletSchema),
        metadata={"description": "Every wallet of the account (decimal strings)"},
    )
    responsible_gaming = fields.Nested(
        LimitsSchema,
        allow_none=True,
        metadata={"description": "Players: limits with usage, exclusion, reality check"},
    )
    phones = fields.List(
        fields.Nested(PhoneSchema),
        metadata={"description": "Phone numbers (E.164), primary first, verification state"},
    )


class NoteSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    author_id = fields.Integer()
    author = fields.String(allow_none=True)
    body = fields.String()
    created_at = fields.String(metadata={"format": "date-time"})


class NoteArgs(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class _UserDetail:
    """A user as ``StaffUserDetailSchema`` reads it: the account's attributes plus its recent
    logins and open sessions, which are not attributes of ``User``."""

    def __init__(
        self, user: User, login_history: list[LoginEvent], active_sessions: list[TokenFamily]
    ) -> None:
        self._user = user
        self.login_history = login_history
        self.active_sessions = active_sessions
        self.wallets = [wallet.wallet_json(w) for w in wallet.balances(user.id)]
        self.responsible_gaming = overview_json(user) if user.role_id == PLAYER else None
        self.phones = phones.list_of(user.id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._user, name)


class StaffUserEditArgs(Schema):
    """Everything is passed to the service, which refuses what staff may not set by name."""

    class Meta:
        unknown = "include"

    first_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    last_name = fields.String(allow_none=True, validate=validate.Length(max=100))
    email = fields.Email(validate=validate.Length(max=255))
    phone = fields.String(allow_none=True, validate=validate.Length(max=32))
    country = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    status = fields.String(validate=validate.Length(max=16))
    status_reason = fields.String(allow_none=True, validate=validate.Length(max=500))
    role = fields.Raw()


class ReasonArgs(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class SuspendArgs(ReasonArgs):
    duration_days = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=3650))


class AgentArgs(Schema):
    agent_id = fields.Integer(required=True, allow_none=True)


class ActionResultSchema(Schema):
    message = fields.String()
    user = fields.Nested(StaffUserSchema)
    sessions_revoked = fields.Integer()


class AccessRulesSchema(Schema):
    ip_blocklist = fields.List(fields.String())
    ip_allowlist = fields.List(fields.String())
    admin_ip_allowlist = fields.List(fields.String())
    restricted_countries = fields.List(fields.String())


class AccessRulesArgs(AccessRulesSchema):
    reason = fields.String(allow_none=True, validate=validate.Length(max=500))


@blp.route("/users")
class Users(MethodView):
    @permission_required("players.read")
    @blp.arguments(UserListArgs, location="query")
    @blp.response(200, envelope_of(StaffUserSchema, many=True))
    @blp.doc(security=SECURITY)
    def get(self, args):
        """Search accounts: username, email, status, country, role, search; sort field:dir."""
        page, limit = args.pop("page"), args.pop("limit")
        rows, total = staff_actions.list_users(
            g.user, staff_actions.UserFilters(**args), page=page, limit=limit
        )
        return {"data": rows, "meta": page_meta(page, limit, total)}


@blp.route("/users/<int:user_id>")
class UserDetail(MethodView):
    @permission_required("players.read")
    @blp.response(200, envelope_of(StaffUserDetailSchema))
    @blp.doc(security=SECURITY)
    def get(self, user_id: int):
        """Full account view: recent logins, open sessions, balances and (players) RG limits."""
        user = staff_actions.get_user(g.user, user_id)
        history, _total = identity.login_history(user.id, page=1, limit=20)
        return {"data": _UserDetail(user, history, identity.active_sessions(user.id))}

    @permission_required("players.manage")
    @blp.arguments(StaffUserEditArgs)
    @blp.response(200, envelope_of(StaffUserSchema))
    @blp.doc(security=SECURITY)
    def put(self, args, user_id: int):
        """Edit profile fields, status (with status_reason) or, with staff.manage, role."""
        return {"data": staff_actions.update_user(g.user, user_id, args)}


@blp.route("/users/<int:user_id>/notes")
class Notes(MethodView):
    @permission_required("players.read")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(NoteSchema, many=True))
    @blp.doc(security=SECURITY)
    def get(self, args, user_id: int):
        """Staff notes on a player, newest first."""
        rows, total = player_notes.notes_of(user_id, page=args["page"], limit=args["limit"])
        authors = player_notes.authors_of(rows)
        return {
            "data": [player_notes.note_json(n, authors) for n in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }

    @permission_required("players.notes")
    @blp.arguments(NoteArgs)
    @blp.response(201, envelope_of(NoteSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, user_id: int):
        """Add a note to a player (append-only; audited ``players.note.add``)."""
        note = player_notes.add_note(user_id, args["body"], actor=g.user)
        return {"data": player_notes.note_json(note, {g.user.id: g.user.username})}, 201


def _result(message: str, user, revoked: int | None = None) -> dict:
    data = {"message": message, "user": user}
    if revoked is not None:
        data["sessions_revoked"] = revoked
    return {"data": data}


@blp.route("/users/<int:user_id>/ban")
class Ban(MethodView):
    @permission_required("players.manage")
    @blp.arguments(ReasonArgs)
    @blp.response(200, envelope_of(ActionResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, user_id: int):
        """Ban: status banned, every token revoked, session.logout pushed."""
        return _result("User banned", staff_actions.ban(g.user, user_id, args["reason"]))


@blp.route("/users/<int:user_id>/suspend")
class Suspend(MethodView):
    @permission_required("players.manage")
    @blp.arguments(SuspendArgs)
    @blp.response(200, envelope_of(ActionResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, user_id: int):
        """Suspend for ``duration_days`` (none = until lifted); tokens revoked."""
        user = staff_actions.suspend(g.user, user_id, args["reason"], args.get("duration_days"))
        return _result("User suspended", user)


@blp.route("/users/<int:user_id>/reopen")
class Reopen(MethodView):
    @permission_required("players.manage")
    @blp.arguments(ReasonArgs)
    @blp.response(200, envelope_of(ActionResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, user_id: int):
        """Reopen an account its player closed (not an erased one, never while self-excluded);
        audited with the reason."""
        user = closure.reopen_by_staff(user_id, actor=g.user, reason=args["reason"])
        return _result("Account reopened", user)


@blp.route("/users/<int:user_id>/reset-password")
class ResetPassword(MethodView):
    @permission_required("players.manage")
    @blp.response(200, envelope_of(ActionResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, user_id: int):
        """Invalidate the password, end sessions and mail the user a one-time reset link."""
        user = staff_actions.reset_password(g.user, user_id)
        return _result("Password reset; a reset link was e-mailed to the user", user)


@blp.route("/users/<int:user_id>/logout")
class ForceLogout(MethodView):
    @permission_required("players.manage")
    @blp.response(200, envelope_of(ActionResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, user_id: int):
        """Force logout: every token of the user stops working now."""
        revoked = staff_actions.force_logout(g.user, user_id)
        return _result("User logged out", staff_actions.get_user(g.user, user_id), revoked)


@blp.route("/users/<int:user_id>/reset-2fa")
class ResetTwoFactor(MethodView):
    @permission_required("staff.manage")
    @blp.response(200, envelope_of(ActionResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, user_id: int):
        """Admin only: reset another staff member's two-factor (a lost device). Their TOTP
        secret and recovery codes are deleted, every session ends, and their next sign-in
        enrols a new authenticator. Never your own (403). Audited ``staff.totp.reset``."""
        user = staff_auth.reset_totp(user_id, g.user)
        return _result("Two-factor reset; the staff member enrols again at next sign-in", user)


@blp.route("/users/<int:user_id>/assign-agent")
class AssignAgent(MethodView):
    @permission_required("affiliates.manage")
    @blp.arguments(AgentArgs)
    @blp.response(200, envelope_of(ActionResultSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, user_id: int):
        """Attach the player to an agent (``agent_id: null`` detaches)."""
        user = staff_actions.assign_agent(g.user, user_id, args["agent_id"])
        return _result("Agent assigned", user)


@blp.route("/security/access-rules")
class AccessRules(MethodView):
    @permission_required("settings.manage")
    @blp.response(200, envelope_of(AccessRulesSchema))
    @blp.doc(security=SECURITY)
    def get(self):
        """IP block/allow lists, staff IP allow list, restricted countries."""
        return {"data": access_rules.get_rules()}

    @permission_required("settings.manage")
    @blp.arguments(AccessRulesArgs)
    @blp.response(200, envelope_of(AccessRulesSchema))
    @blp.doc(security=SECURITY)
    def put(self, args):
        """Replace the lists given in the body (others unchanged); audited."""
        reason = args.pop("reason", None)
        with atomic():
            rules = access_rules.set_rules(args, actor=g.user, reason=reason)
        return {"data": rules}


class ErasureListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(("pending", "completed", "rejected")))


class ErasureRowSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    status = fields.String()
    reason = fields.String(allow_none=True)
    requested_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)
    decided_by_id = fields.Integer(allow_none=True)
    decision_note = fields.String(allow_none=True)


class ErasureDecisionArgs(Schema):
    note = fields.String(allow_none=True, validate=validate.Length(max=500))


@blp.route("/erasure-requests")
class ErasureRequests(MethodView):
    @permission_required("players.read")
    @blp.arguments(ErasureListArgs, location="query")
    @blp.response(200, envelope_of(ErasureRowSchema, many=True))
    @blp.doc(security=SECURITY)
    def get(self, args):
        """GDPR erasure requests, newest first (``status`` filters)."""
        rows, total = gdpr.list_requests(
            status=args.get("status"), page=args["page"], limit=args["limit"]
        )
        return {"data": rows, "meta": page_meta(args["page"], args["limit"], total)}


@blp.route("/erasure-requests/<int:request_id>/approve")
class ErasureApprove(MethodView):
    @permission_required("players.manage")
    @blp.arguments(ErasureDecisionArgs)
    @blp.response(200, envelope_of(ErasureRowSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, request_id: int):
        """Pseudonymise the player and close the account (idempotent; audited ``user.erasure``)."""
        return {"data": gdpr.approve(request_id, g.user, args.get("note"))}


@blp.route("/erasure-requests/<int:request_id>/reject")
class ErasureReject(MethodView):
    @permission_required("players.manage")
    @blp.arguments(ErasureDecisionArgs)
    @blp.response(200, envelope_of(ErasureRowSchema))
    @blp.doc(security=SECURITY)
    def post(self, args, request_id: int):
        """Refuse the request with a ``note`` saying why (audited)."""
        return {"data": gdpr.reject(request_id, g.user, args.get("note") or "")}
