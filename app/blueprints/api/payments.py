"""Player payments: methods, deposits, status, history; gateway webhooks; withdrawals."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.blueprints.api.responsible_gaming import PromptSchema
from app.compliance import responsible_gaming as rg
from app.core.extensions import client_ip, limiter
from app.core.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from app.core.idempotency import idempotent
from app.core.money import format_minor
from app.core.schemas import Amount, Currency, PageArgs, envelope_of, page_meta
from app.identity.auth import login_required, player_required
from app.payments import deposits, gateways_admin, records, webhooks, withdrawals

blp = Blueprint("payments", __name__, url_prefix="/api", description="Deposits and withdrawals")


class GatewayPublicSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    code = fields.String()
    type = fields.String()
    direction = fields.String()
    description = fields.String(allow_none=True)
    logo_url = fields.String(allow_none=True)
    website_url = fields.String(allow_none=True)
    supported_currencies = fields.List(fields.String())
    supported_countries = fields.List(fields.String())
    min_amount = fields.String(allow_none=True)
    max_amount = fields.String(allow_none=True)
    processing_time = fields.String(allow_none=True)
    fees_percentage = fields.String()
    fees_fixed = fields.String()
    auto_approval = fields.Boolean()
    requires_kyc = fields.Boolean()


def gateway_public(gw) -> dict:
    def dec(v):
        return None if v is None else format(v.normalize(), "f")

    return {
        "id": gw.id,
        "name": gw.name,
        "code": gw.code,
        "type": gw.type,
        "direction": gw.direction,
        "description": gw.description,
        "logo_url": gw.logo_url,
        "website_url": gw.website_url,
        "supported_currencies": gw.supported_currencies or [],
        "supported_countries": gw.supported_countries or [],
        "min_amount": dec(gw.min_amount),
        "max_amount": dec(gw.max_amount),
        "processing_time": gw.processing_time,
        "fees_percentage": dec(gw.fees_percentage),
        "fees_fixed": dec(gw.fees_fixed),
        "auto_approval": gw.auto_approval,
        "requires_kyc": gw.requires_kyc,
    }


class PaymentSchema(Schema):
    id = fields.Integer()
    transaction_id = fields.String()
    type = fields.String()
    status = fields.String()
    amount = fields.String()
    currency = fields.String()
    fee = fields.String()
    gateway_id = fields.Integer()
    gateway_name = fields.String()
    payment_url = fields.String(allow_none=True)
    order_id = fields.String(allow_none=True)
    details = fields.Dict(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)


class DepositSchema(PaymentSchema):
    #: The deposit-limit prompt (UKGC RTS 12A) while it is due.
    deposit_limit_prompt = fields.Nested(PromptSchema)


def payment_json(txn) -> dict:
    return {
        "id": txn.id,
        "transaction_id": txn.public_id,
        "type": txn.type,
        "status": txn.status,
        "amount": format_minor(txn.amount_minor, txn.currency),
        "currency": txn.currency,
        "fee": format_minor(txn.fee_minor, txn.currency),
        "gateway_id": txn.gateway_id,
        "gateway_name": txn.gateway.name,
        "payment_url": txn.payment_url if txn.status == "pending" else None,
        "order_id": txn.gateway_reference,
        "details": records.mask_details(txn.details),
        "reason": txn.reason,
        "created_at": txn.created_at,
        "processed_at": txn.processed_at,
    }


class GatewayQuery(Schema):
    type = fields.String(
        load_default="deposit", validate=validate.OneOf(["deposit", "withdrawal", "both"])
    )
    currency = Currency(load_default=None)


class DepositArgs(Schema):
    class Meta:
        description = (
            "A deposit: `amount`, and the way to pay: `method` (a gateway code such as "
            '`"sandbox"`, or a kind such as `"card"`; `GET /api/payment/methods` lists them) or '
            "`gateway_id`. One of the two is required."
        )

    amount = Amount(required=True)
    currency = Currency(
        load_default=None, metadata={"description": "Default: the player's currency"}
    )
    method = fields.String(
        load_default=None,
        validate=validate.Length(max=50),
        metadata={
            "description": "Gateway code or kind (required unless gateway_id is given)",
            "example": "sandbox",
        },
    )
    gateway_id = fields.Integer(
        load_default=None,
        metadata={"description": "Gateway id from /api/payment/methods (or give method)"},
    )
    type = fields.String(load_default="deposit", validate=validate.Equal("deposit"))
    description = fields.String(load_default=None, validate=validate.Length(max=500))
    # A relative path or a URL on an allowed origin (app.core.redirects, checked by the domain).
    return_url = fields.String(load_default=None, validate=validate.Length(max=500))
    cancel_url = fields.String(load_default=None, validate=validate.Length(max=500))

    @validates_schema
    def _a_way_to_pay(self, data: dict[str, Any], **_kw: Any) -> None:
        if not data.get("method") and data.get("gateway_id") is None:
            raise ValidationError(
                'Give a payment method (e.g. "sandbox") or a gateway_id', field_name="method"
            )


#: OpenAPI 3.0 cannot say "one of these two" with ``required``; ``anyOf`` can.
DEPOSIT_ONE_OF = [{"required": ["method"]}, {"required": ["gateway_id"]}]


def document_spec(spec: Any) -> None:
    """What the schema alone cannot express, added to the generated document."""
    schema = spec.components.schemas.get("DepositArgs")
    if schema is not None:
        schema["anyOf"] = DEPOSIT_ONE_OF


class MethodSchema(Schema):
    type = fields.String()
    gateways = fields.List(fields.Nested(GatewayPublicSchema))


@blp.route("/payment/methods")
class Methods(MethodView):
    @login_required
    @blp.response(200, envelope_of(MethodSchema, many=True))
    def get(self) -> dict[str, Any]:
        """Payment methods available to the player, grouped by kind."""
        user = g.user
        groups: dict[str, list] = {}
        for gw in gateways_admin.available_gateways(user, "both", None):
            groups.setdefault(gw.type, []).append(gateway_public(gw))
        return {"data": [{"type": t, "gateways": gws} for t, gws in sorted(groups.items())]}


@blp.route("/payment/gateways")
class Gateways(MethodView):
    @login_required
    @blp.arguments(GatewayQuery, location="query")
    @blp.response(200, envelope_of(GatewayPublicSchema, many=True))
    def get(self, args):
        """Active gateways for the player's country, a direction and a currency."""
        user = g.user
        currency = args["currency"] or user.currency
        gws = gateways_admin.available_gateways(user, args["type"], currency)
        return {"data": [gateway_public(gw) for gw in gws]}


def _create_deposit(args):
    txn = deposits.create_deposit(
        g.user,
        amount=args["amount"],
        currency=args["currency"],
        gateway_id=args["gateway_id"],
        method=args["method"],
        description=args["description"],
        return_url=args["return_url"],
        cancel_url=args["cancel_url"],
        ip=client_ip(),
    )
    return {
        "data": {**payment_json(txn), "deposit_limit_prompt": rg.deposit_limit_prompt(g.user.id)}
    }, 201


# Two phases: create_deposit commits the pending payment before it calls the gateway, and no
# transaction may stay open across that call. A crash between the two leaves the key in use
# until its lease ends; the retry then opens a second pending deposit, which moves no money
# (a deposit is credited only when its own checkout is paid, once, by the gateway's webhook).
deposit_idempotency = idempotent("payment.deposit", phased=True)


@blp.route("/payment/deposit")
class Deposit(MethodView):
    @player_required
    @blp.arguments(DepositArgs)
    @deposit_idempotency
    @blp.response(201, envelope_of(DepositSchema))
    @blp.doc(parameters=[IDEMPOTENCY_KEY])
    def post(self, args):
        """Start a deposit: a pending payment and the gateway page to pay it on."""
        return _create_deposit(args)


@blp.route("/payment/create")
class CreatePayment(MethodView):
    @player_required
    @blp.arguments(DepositArgs)
    @deposit_idempotency
    @blp.response(201, envelope_of(DepositSchema))
    @blp.doc(parameters=[IDEMPOTENCY_KEY])
    def post(self, args):
        """The integration guide's spelling of ``/payment/deposit``."""
        return _create_deposit(args)


@blp.route("/payment/status/<string:transaction_id>")
class PaymentStatus(MethodView):
    @login_required
    @blp.response(200, envelope_of(PaymentSchema))
    def get(self, transaction_id):
        """One of the player's own payments."""
        return {"data": payment_json(records.get_payment(transaction_id, user=g.user))}


@blp.route("/payment/deposit/history")
class DepositHistory(MethodView):
    @login_required
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(PaymentSchema, many=True))
    def get(self, args):
        rows, total = deposits.deposit_history(g.user, args["page"], args["limit"])
        return {
            "data": [payment_json(t) for t in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }


class WebhookAnswer(Schema):
    received = fields.Boolean()
    verdict = fields.String()


@blp.route("/payment/webhook/<string:code>")
class Webhook(MethodView):
    decorators = [limiter.limit(lambda: current_app.config["RATE_LIMIT_CALLBACK"])]

    @blp.response(200, envelope_of(WebhookAnswer))
    @blp.doc(security=[{"providerSignature": []}])
    def post(self, code):
        """Gateway → us. Signed (sandbox: ``X-Signature``; Stripe: ``Stripe-Signature``)."""
        verdict = webhooks.handle_webhook(
            code, request.get_data(cache=False), dict(request.headers), client_ip()
        )
        return {"data": {"received": True, "verdict": verdict}}


class WithdrawArgs(Schema):
    amount = Amount(required=True)
    currency = Currency(load_default=None)
    method = fields.String(load_default=None, validate=validate.Length(max=50))
    gateway_id = fields.Integer(load_default=None)
    iban = fields.String(load_default=None, validate=validate.Length(max=64))
    details = fields.Dict(keys=fields.String(), load_default=None)
    #: Confirms giving up a bonus still being wagered (otherwise BONUS_WAGERING_OPEN).
    forfeit_bonus = fields.Boolean(load_default=False)


class WithdrawalCreated(Schema):
    id = fields.Integer()
    transaction_id = fields.String()
    status = fields.String()
    amount = fields.String()
    currency = fields.String()


def _withdraw_routes(prefix: str, suffix: str) -> None:
    @blp.route(f"{prefix}/request", endpoint=f"withdraw_request{suffix}")
    class Request(MethodView):
        @player_required
        @blp.arguments(WithdrawArgs)
        @idempotent("withdrawal.request")
        @blp.response(201, envelope_of(WithdrawalCreated))
        @blp.doc(parameters=[IDEMPOTENCY_KEY])
        def post(self, args):
            """Request a withdrawal; the amount is held until it is paid out or released."""
            txn = withdrawals.request_withdrawal(
                g.user,
                amount=args["amount"],
                currency=args["currency"],
                method=args["method"],
                gateway_id=args["gateway_id"],
                iban=args["iban"],
                details=args["details"],
                ip=client_ip(),
                forfeit_bonus=args["forfeit_bonus"],
            )
            return {
                "data": {
                    "id": txn.id,
                    "transaction_id": txn.public_id,
                    "status": txn.status,
                    "amount": format_minor(txn.amount_minor, txn.currency),
                    "currency": txn.currency,
                }
            }, 201

    @blp.route(f"{prefix}/history", endpoint=f"withdraw_history{suffix}")
    class History(MethodView):
        @login_required
        @blp.arguments(PageArgs, location="query")
        @blp.response(200, envelope_of(PaymentSchema, many=True))
        def get(self, args):
            rows, total = withdrawals.withdrawal_history(g.user, args["page"], args["limit"])
            return {
                "data": [payment_json(t) for t in rows],
                "meta": page_meta(args["page"], args["limit"], total),
            }

    @blp.route(f"{prefix}/<string:ident>/cancel", endpoint=f"withdraw_cancel{suffix}")
    class Cancel(MethodView):
        @login_required
        @idempotent("withdrawal.cancel")
        @blp.response(200, envelope_of(PaymentSchema))
        @blp.doc(parameters=[IDEMPOTENCY_KEY])
        def post(self, ident):
            """Cancel a pending withdrawal; the held amount returns to the balance."""
            return {"data": payment_json(withdrawals.cancel_withdrawal(g.user, ident))}


_withdraw_routes("/withdrawals", "")
_withdraw_routes("/withdraw", "_alias")
