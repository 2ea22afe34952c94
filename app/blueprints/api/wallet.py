"""Player wallet: ``/api/user/balance``, ``/api/user/transactions``, ``/api/user/bets``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core.errors import ValidationError
from app.core.schemas import Currency, PageArgs, envelope_of, page_meta
from app.identity.auth import player_required
from app.play import rounds
from app.wallet import ledger as wallet
from app.wallet.models import LEDGER_TYPES

blp = Blueprint("user_wallet", __name__, url_prefix="/api/user", description="Player wallet")


def day_start(value: date | None) -> datetime | None:
    return None if value is None else datetime.combine(value, time.min, tzinfo=UTC)


def day_after(value: date | None) -> datetime | None:
    """``date_to`` is inclusive: everything before the next midnight."""
    return None if value is None else datetime.combine(value + timedelta(days=1), time.min, UTC)


class WalletSchema(Schema):
    currency = fields.String()
    balance = fields.String(metadata={"example": "152.40"})
    bonus_balance = fields.String(metadata={"example": "30.00"})
    held_balance = fields.String(metadata={"description": "Reserved by pending withdrawals"})
    total_balance = fields.String()


class BalanceSchema(WalletSchema):
    wallets = fields.List(fields.Nested(WalletSchema))


class TransactionSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    type = fields.String()
    amount = fields.String()
    cash_amount = fields.String()
    bonus_amount = fields.String()
    held_amount = fields.String()
    balance_after = fields.String()
    bonus_balance_after = fields.String()
    currency = fields.String()
    status = fields.String()
    description = fields.String(allow_none=True)
    source = fields.String()
    reference_type = fields.String(allow_none=True)
    reference_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


class TransactionArgs(PageArgs):
    type = fields.String(
        metadata={"description": "One type or a comma list: " + ", ".join(LEDGER_TYPES)}
    )
    currency = Currency()
    date_from = fields.Date()
    date_to = fields.Date()


class BetSchema(Schema):
    id = fields.Integer()
    round_id = fields.String()
    user_id = fields.Integer()
    game_id = fields.Integer()
    game_name = fields.String()
    provider = fields.String()
    provider_code = fields.String()
    currency = fields.String()
    bet_amount = fields.String()
    win_amount = fields.String()
    refunded_amount = fields.String()
    net = fields.String()
    bets_count = fields.Integer()
    status = fields.String(metadata={"description": "pending, completed or cancelled"})
    outcome = fields.String(allow_none=True, metadata={"description": "win or lose"})
    created_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)


class BetArgs(PageArgs):
    game_id = fields.Integer()
    status = fields.String(validate=validate.OneOf(["pending", "completed", "cancelled"]))
    outcome = fields.String(validate=validate.OneOf(["win", "lose"]))
    currency = Currency()
    date_from = fields.Date()
    date_to = fields.Date()


def ledger_types(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    types = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = [t for t in types if t not in LEDGER_TYPES]
    if unknown:
        raise ValidationError.field("type", f"Unknown type(s): {', '.join(unknown)}")
    return types


@blp.route("/balance")
class Balance(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.response(200, envelope_of(BalanceSchema))
    def get(self):
        """Cash and bonus balance of the player's main wallet, and every wallet."""
        user = g.user
        wallets = wallet.balances(user.id)
        main = next((w for w in wallets if w.currency == user.currency), None)
        if main is None:
            main = wallet.get_or_create_wallet(user.id, user.currency)
            wallets.append(main)
        return {
            "data": {
                **wallet.wallet_json(main),
                "wallets": [wallet.wallet_json(w) for w in wallets],
            }
        }


@blp.route("/transactions")
class Transactions(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(TransactionArgs, location="query")
    @blp.response(200, envelope_of(TransactionSchema, many=True))
    def get(self, args):
        """The player's ledger, newest first (filters: type, currency, date range)."""
        f = wallet.LedgerFilter(
            user_id=g.user.id,
            types=ledger_types(args.get("type")),
            currency=args.get("currency"),
            date_from=day_start(args.get("date_from")),
            date_to=day_after(args.get("date_to")),
        )
        page, limit = args["page"], args["limit"]
        rows, total = wallet.transactions(f, offset=(page - 1) * limit, limit=limit)
        return {
            "data": [wallet.transaction_json(t) for t in rows],
            "meta": page_meta(page, limit, total),
        }


@blp.route("/bets")
class Bets(MethodView):
    @player_required
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(BetArgs, location="query")
    @blp.response(200, envelope_of(BetSchema, many=True))
    def get(self, args):
        """The player's game rounds, newest first (filters: game, status, outcome, dates)."""
        f = rounds.BetFilter(
            user_id=g.user.id,
            game_id=args.get("game_id"),
            status=args.get("status"),
            outcome=args.get("outcome"),
            currency=args.get("currency"),
            date_from=day_start(args.get("date_from")),
            date_to=day_after(args.get("date_to")),
        )
        page, limit = args["page"], args["limit"]
        rows, total = rounds.bets(f, offset=(page - 1) * limit, limit=limit)
        return {"data": rows, "meta": page_meta(page, limit, total)}
