"""Staff money API: manual adjustments, bets, ledger transactions, provider callback log."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.blueprints.api.wallet import (
    BetArgs,
    BetSchema,
    TransactionSchema,
    day_after,
    day_start,
    ledger_types,
)
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.core.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from app.core.idempotency import idempotent, request_key
from app.core.money import MoneyError, parse_minor
from app.core.schemas import Amount, Currency, PageArgs, PageMetaSchema, page_meta
from app.identity.auth import permission_required
from app.identity.models import User
from app.play import rounds
from app.play.callbacks import log as callback_log
from app.play.callbacks import replay
from app.wallet import ledger as wallet

blp = Blueprint("admin_money", __name__, url_prefix="/api/admin", description="Staff: money")


class AdjustSchema(Schema):
    amount = Amount(required=True, metadata={"description": "Negative debits", "example": "-5.00"})
    currency = Currency(metadata={"description": "Default: the player's currency"})
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))
    balance_type = fields.String(load_default="cash", validate=validate.OneOf(["cash", "bonus"]))


class ManualAdjustSchema(AdjustSchema):
    user_id = fields.Integer(required=True)


class PostingSchema(Schema):
    transaction_id = fields.Integer()
    user_id = fields.Integer()
    type = fields.String()
    amount = fields.String()
    currency = fields.String()
    balance = fields.String()
    bonus_balance = fields.String()
    replayed = fields.Boolean()


class PostingEnvelope(Schema):
    success = fields.Constant(True)
    message = fields.String()
    data = fields.Nested(PostingSchema)


def _adjust(user_id: int, args: dict):
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user")
    currency = args.get("currency") or user.currency
    try:
        amount = parse_minor(args["amount"], currency, allow_negative=True)
    except MoneyError as exc:
        raise ValidationError.field("amount", str(exc)) from None
    posting = wallet.adjust(
        user.id,
        currency,
        amount,
        reason=args["reason"],
        balance_type=args["balance_type"],
        actor=g.user,
        idempotency_key=_ledger_key(),
    )
    return {
        "success": True,
        "message": "Balance adjusted",
        "data": wallet.posting_json(posting),
    }, (200 if posting.replayed else 201)


def _ledger_key() -> str | None:
    # The ledger's own (source, key) never expires: a key reused after the 24 h of the API's
    # idempotency record still cannot post a second adjustment.
    key = request_key()
    return f"adjust:{g.user.id}:{key}" if key is not None else None


def _as_replayed(status: int, body: Any) -> tuple[int, Any]:
    """This API's contract predates ``app.core.idempotency``: a repeated adjustment answers
    200 with ``replayed: true`` (a stored refusal is replayed as it was)."""
    if status == 201 and isinstance(body, dict) and isinstance(body.get("data"), dict):
        return 200, {**body, "data": {**body["data"], "replayed": True}}
    return status, body


@blp.route("/users/<int:user_id>/adjust-balance")
class AdjustBalance(MethodView):
    @permission_required("balances.adjust")
    @blp.doc(security=[{"bearerAuth": []}], parameters=[IDEMPOTENCY_KEY])
    @blp.arguments(AdjustSchema)
    @idempotent("admin.adjust_balance", replay_as=_as_replayed)
    @blp.response(201, PostingEnvelope)
    def post(self, args, user_id: int):
        """Credit (positive) or debit (negative) a player's cash or bonus balance; audited.

        Send an `Idempotency-Key` header to make a retried click a no-op (a repeat answers 200
        with `replayed: true`).
        """
        return _adjust(user_id, args)


@blp.route("/payments/manual-adjustment")
class ManualAdjustment(MethodView):
    @permission_required("balances.adjust")
    @blp.doc(security=[{"bearerAuth": []}], parameters=[IDEMPOTENCY_KEY])
    @blp.arguments(ManualAdjustSchema)
    @idempotent("admin.manual_adjustment", replay_as=_as_replayed)
    @blp.response(201, PostingEnvelope)
    def post(self, args):
        """Same as `/users/<id>/adjust-balance` with `user_id` in the body."""
        return _adjust(args["user_id"], args)


class AdminBetArgs(BetArgs):
    user_id = fields.Integer()
    provider = fields.String()


class SummaryPage(Schema):
    success = fields.Constant(True)
    data = fields.List(fields.Dict())
    meta = fields.Nested(PageMetaSchema)
    summary = fields.Dict(metadata={"description": "Totals per currency for the whole filter"})


class BetPage(SummaryPage):
    data = fields.List(fields.Nested(BetSchema))


class TransactionPage(SummaryPage):
    data = fields.List(fields.Nested(TransactionSchema))


@blp.route("/bets")
class AdminBets(MethodView):
    @permission_required("transactions.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(AdminBetArgs, location="query")
    @blp.response(200, BetPage)
    def get(self, args):
        """Every player's rounds with filters, plus stake/win/GGR totals per currency."""
        f = rounds.BetFilter(
            user_id=args.get("user_id"),
            game_id=args.get("game_id"),
            provider=args.get("provider"),
            status=args.get("status"),
            outcome=args.get("outcome"),
            currency=args.get("currency"),
            date_from=day_start(args.get("date_from")),
            date_to=day_after(args.get("date_to")),
        )
        page, limit = args["page"], args["limit"]
        rows, total = rounds.bets(f, offset=(page - 1) * limit, limit=limit)
        return {
            "data": rows,
            "meta": page_meta(page, limit, total),
            "summary": rounds.bet_summary(f),
        }


class AdminTransactionArgs(PageArgs):
    type = fields.String()
    user_id = fields.Integer()
    currency = Currency()
    source = fields.String()
    date_from = fields.Date()
    date_to = fields.Date()


@blp.route("/transactions")
class AdminTransactions(MethodView):
    @permission_required("transactions.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(AdminTransactionArgs, location="query")
    @blp.response(200, TransactionPage)
    def get(self, args):
        """The ledger with filters, plus count and amount per type and currency."""
        f = wallet.LedgerFilter(
            user_id=args.get("user_id"),
            types=ledger_types(args.get("type")),
            currency=args.get("currency"),
            source=args.get("source"),
            date_from=day_start(args.get("date_from")),
            date_to=day_after(args.get("date_to")),
        )
        page, limit = args["page"], args["limit"]
        rows, total = wallet.transactions(f, offset=(page - 1) * limit, limit=limit)
        return {
            "data": [wallet.transaction_json(t) for t in rows],
            "meta": page_meta(page, limit, total),
            "summary": wallet.transaction_summary(f),
        }


class CallbackSchema(Schema):
    id = fields.Integer()
    provider_code = fields.String()
    action = fields.String(allow_none=True)
    transaction_id = fields.String(allow_none=True)
    round_id = fields.String(allow_none=True)
    user_id = fields.Integer(allow_none=True)
    verdict = fields.String()
    signature_valid = fields.Boolean()
    duplicate = fields.Boolean()
    payload = fields.Raw(allow_none=True)
    response = fields.Raw(allow_none=True)
    balance_before = fields.Integer(allow_none=True, metadata={"description": "minor units"})
    balance_after = fields.Integer(allow_none=True, metadata={"description": "minor units"})
    latency_ms = fields.Float(allow_none=True)
    correlation_id = fields.String(allow_none=True)
    remote_ip = fields.String(allow_none=True)
    replay_of_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class CallbackArgs(PageArgs):
    provider = fields.String()
    action = fields.String()
    verdict = fields.String(metadata={"description": "ok or an error code"})
    user_id = fields.Integer()
    transaction_id = fields.String()
    round_id = fields.String()
    date_from = fields.Date()
    date_to = fields.Date()


class CallbackPage(Schema):
    success = fields.Constant(True)
    data = fields.List(fields.Nested(CallbackSchema))
    meta = fields.Nested(PageMetaSchema)


class ReplayEnvelope(Schema):
    success = fields.Constant(True)
    data = fields.Dict()


@blp.route("/providers/callbacks")
class Callbacks(MethodView):
    @permission_required("callbacks.read")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(CallbackArgs, location="query")
    @blp.response(200, CallbackPage)
    def get(self, args):
        """The provider callback log, newest first."""
        page, limit = args["page"], args["limit"]
        rows, total = callback_log.callback_log(
            provider=args.get("provider"),
            action=args.get("action"),
            verdict=args.get("verdict"),
            user_id=args.get("user_id"),
            transaction_id=args.get("transaction_id"),
            round_id=args.get("round_id"),
            date_from=day_start(args.get("date_from")),
            date_to=day_after(args.get("date_to")),
            offset=(page - 1) * limit,
            limit=limit,
        )
        return {"data": rows, "meta": page_meta(page, limit, total)}


@blp.route("/providers/callbacks/<int:callback_id>/replay")
class ReplayCallback(MethodView):
    @permission_required("callbacks.replay")
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, ReplayEnvelope)
    def post(self, callback_id: int):
        """Re-run a logged callback through the same service (idempotent; audited)."""
        _row, result = replay.replay(callback_id, actor=g.user)
        return {"data": result.as_native()}
