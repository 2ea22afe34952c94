"""Staff JSON API for payments: gateways, withdrawal and deposit queues, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.payments import PaymentSchema, gateway_public, payment_json
from app.core.extensions import db
from app.core.schemas import Currency, PageArgs, envelope_of, page_meta
from app.identity.auth import permission_required
from app.identity.models import User
from app.payments import gateways_admin, records, withdrawals
from app.payments.gateways import ADAPTERS

blp = Blueprint("admin_payments", __name__, url_prefix="/api/admin", description="Payments (staff)")


class GatewayAdminSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    type = fields.String()
    adapter = fields.String()
    direction = fields.String()
    description = fields.String(allow_none=True)
    logo_url = fields.String(allow_none=True)
    website_url = fields.String(allow_none=True)
    api_endpoint = fields.String(allow_none=True)
    webhook_url = fields.String()
    supported_currencies = fields.List(fields.String())
    supported_countries = fields.List(fields.String())
    min_amount = fields.String(allow_none=True)
    max_amount = fields.String(allow_none=True)
    processing_time = fields.String(allow_none=True)
    fees_percentage = fields.String()
    fees_fixed = fields.String()
    auto_approval = fields.Boolean()
    requires_kyc = fields.Boolean()
    is_active = fields.Boolean()
    config = fields.Dict()
    has_api_key = fields.Boolean()
    has_api_secret = fields.Boolean()
    has_webhook_secret = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


def gateway_admin(gw) -> dict:
    from flask import current_app

    return {
        **gateway_public(gw),
        "adapter": gw.adapter,
        "api_endpoint": gw.api_endpoint,
        "webhook_url": f"{current_app.config['PUBLIC_URL']}/api/payment/webhook/{gw.code}",
        "is_active": gw.is_active,
        "config": gw.config or {},
        "has_api_key": bool(gw.api_key_enc),
        "has_api_secret": bool(gw.api_secret_enc),
        "has_webhook_secret": bool(gw.webhook_secret_enc),
        "created_at": gw.created_at,
        "updated_at": gw.updated_at,
    }


class GatewayArgs(Schema):
    name = fields.String(validate=validate.Length(min=1, max=100))
    code = fields.String(validate=validate.Regexp(r"^[a-z0-9_\-]{2,50}$"))
    type = fields.String(validate=validate.Length(min=1, max=50))
    adapter = fields.String(validate=validate.OneOf(list(ADAPTERS)))
    direction = fields.String(validate=validate.OneOf(["deposit", "withdrawal", "both"]))
    description = fields.String(allow_none=True)
    logo_url = fields.Url(allow_none=True)
    website_url = fields.Url(allow_none=True)
    api_endpoint = fields.Url(allow_none=True, require_tld=False)
    api_key = fields.String(allow_none=True, load_only=True)
    api_secret = fields.String(allow_none=True, load_only=True)
    webhook_secret = fields.String(allow_none=True, load_only=True)
    webhook_url = fields.String(allow_none=True, load_only=True)  # informative: ours is fixed
    supported_currencies = fields.List(Currency())
    supported_countries = fields.List(fields.String(validate=validate.Regexp(r"^[A-Za-z]{2}$")))
    min_amount = fields.Decimal(allow_none=True, validate=validate.Range(min=0), places=8)
    max_amount = fields.Decimal(allow_none=True, validate=validate.Range(min=0), places=8)
    processing_time = fields.String(allow_none=True, validate=validate.Length(max=50))
    fees_percentage = fields.Decimal(validate=validate.Range(min=0, max=99.999), places=3)
    fees_fixed = fields.Decimal(validate=validate.Range(min=0), places=8)
    auto_approval = fields.Boolean()
    requires_kyc = fields.Boolean()
    is_active = fields.Boolean()
    config = fields.Dict()


class GatewayCreateArgs(GatewayArgs):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_\-]{2,50}$"))
    type = fields.String(required=True, validate=validate.Length(min=1, max=50))
    supported_currencies = fields.List(Currency(), required=True)


def _clean(args: dict) -> dict:
    args.pop("webhook_url", None)
    if "supported_countries" in args:
        args["supported_countries"] = [c.upper() for c in args["supported_countries"]]
    return args


class GatewayDeletedSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    deleted = fields.Boolean()


@blp.route("/payment-gateways")
class GatewayList(MethodView):
    @permission_required("settings.manage")
    @blp.response(200, envelope_of(GatewayAdminSchema, many=True))
    def get(self):
        """All gateways (secrets never included, only whether they are set)."""
        return {"data": [gateway_admin(gw) for gw in gateways_admin.all_gateways()]}

    @permission_required("settings.manage")
    @blp.arguments(GatewayCreateArgs)
    @blp.response(201, envelope_of(GatewayAdminSchema))
    def post(self, args):
        gw = gateways_admin.create_gateway(_clean(args), actor=g.user)
        return {"data": gateway_admin(gw), "message": "Payment gateway created successfully"}, 201


@blp.route("/payment-gateways/<int:gateway_id>")
class GatewayItem(MethodView):
    @permission_required("settings.manage")
    @blp.response(200, envelope_of(GatewayAdminSchema))
    def get(self, gateway_id):
        return {"data": gateway_admin(gateways_admin.get_gateway(gateway_id))}

    @permission_required("settings.manage")
    @blp.arguments(GatewayArgs)
    @blp.response(200, envelope_of(GatewayAdminSchema))
    def put(self, args, gateway_id):
        args.pop("code", None)  # the code is the webhook path: immutable
        gw = gateways_admin.update_gateway(gateway_id, _clean(args), actor=g.user)
        return {"data": gateway_admin(gw)}

    @permission_required("settings.manage")
    @blp.response(200, envelope_of(GatewayDeletedSchema))
    def delete(self, gateway_id):
        """Delete a gateway that never carried a payment (audited ``gateway.delete``); one
        with payments answers 409: disable it instead (``/toggle``)."""
        return {"data": gateways_admin.delete_gateway(gateway_id, actor=g.user)}


@blp.route("/payment-gateways/<int:gateway_id>/toggle")
class GatewayToggle(MethodView):
    @permission_required("settings.manage")
    @blp.response(200, envelope_of(GatewayAdminSchema))
    def post(self, gateway_id):
        return {"data": gateway_admin(gateways_admin.toggle_gateway(gateway_id, actor=g.user))}


class QueueQuery(PageArgs):
    status = fields.String(load_default=None)
    user_id = fields.Integer(load_default=None)
    gateway_id = fields.Integer(load_default=None)
    currency = Currency(load_default=None)
    date_from = fields.Date(load_default=None)
    date_to = fields.Date(load_default=None)


class StaffPaymentSchema(PaymentSchema):
    user_id = fields.Integer()
    username = fields.String()
    approvals = fields.List(fields.Dict())
    required_approvals = fields.Integer()
    ip = fields.String(allow_none=True)
    kyc_status = fields.String()


class PaymentQueueSchema(Schema):
    items = fields.List(fields.Nested(StaffPaymentSchema))
    summary = fields.List(fields.Dict())


def staff_payment(txn) -> dict:
    user = db.session.get_one(User, txn.user_id)  # txn.user_id is a foreign key
    return {
        **payment_json(txn),
        "user_id": txn.user_id,
        "username": user.username,
        "kyc_status": user.kyc_status,
        "ip": txn.ip,
        "approvals": [
            {"approver_id": a.approver_id, "at": a.created_at.isoformat()} for a in txn.approvals
        ],
        "required_approvals": (
            withdrawals.required_approvals(txn) if txn.type == "withdrawal" else 0
        ),
    }


def _queue(type_: str, args: dict) -> dict:
    def day(d, extra=0):
        return None if d is None else datetime.combine(d + timedelta(days=extra), time.min, UTC)

    rows, total, summary = records.list_payments(
        type_,
        status=args["status"],
        user_id=args["user_id"],
        gateway_id=args["gateway_id"],
        currency=args["currency"],
        date_from=day(args["date_from"]),
        date_to=day(args["date_to"], 1),
        page=args["page"],
        limit=args["limit"],
    )
    return {
        "data": {"items": [staff_payment(t) for t in rows], "summary": summary},
        "meta": page_meta(args["page"], args["limit"], total),
    }


@blp.route("/payments/withdrawals")
class WithdrawalQueue(MethodView):
    @permission_required("withdrawals.read")
    @blp.arguments(QueueQuery, location="query")
    @blp.response(200, envelope_of(PaymentQueueSchema))
    def get(self, args):
        """Withdrawals with filters and a per-status/currency summary."""
        return _queue("withdrawal", args)


@blp.route("/payments/deposits")
class DepositQueue(MethodView):
    @permission_required("withdrawals.read")
    @blp.arguments(QueueQuery, location="query")
    @blp.response(200, envelope_of(PaymentQueueSchema))
    def get(self, args):
        """Deposits with filters and a per-status/currency summary."""
        return _queue("deposit", args)


class WithdrawalRejectArgs(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


@blp.route("/payments/withdrawals/<int:payment_id>/approve")
class ApproveWithdrawal(MethodView):
    @permission_required("withdrawals.approve")
    @blp.response(200, envelope_of(StaffPaymentSchema))
    def post(self, payment_id):
        """Approve; large amounts need a second, different approver before the payout."""
        txn = withdrawals.approve_withdrawal(payment_id, g.user)
        return {"data": staff_payment(records.get_payment_by_id(txn.id))}


@blp.route("/payments/withdrawals/<int:payment_id>/reject")
class RejectWithdrawal(MethodView):
    @permission_required("withdrawals.approve")
    @blp.arguments(WithdrawalRejectArgs)
    @blp.response(200, envelope_of(StaffPaymentSchema))
    def post(self, args, payment_id):
        """Reject with a reason; the held amount returns to the player's balance."""
        txn = withdrawals.reject_withdrawal(payment_id, g.user, args["reason"])
        return {"data": staff_payment(txn)}
