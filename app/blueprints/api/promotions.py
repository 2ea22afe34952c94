"""Promotions: the player's offers, claims, vouchers and bonus history; staff management."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.bonus import bonuses, free_spins, promotions
from app.bonus.models import PROMOTION_STATUSES, PROMOTION_TYPES, Promotion
from app.core.errors import NotFound, ValidationError
from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor
from app.core.schemas import Amount, Currency, PageArgs, envelope_of, page_meta
from app.identity.auth import login_optional, permission_required, player_required

blp = Blueprint("promotions", __name__, url_prefix="/api", description="Promotions and bonuses")

#: Request field (decimal amount) -> model column (minor units).
MONEY_FIELDS = {
    "bonus_amount": "bonus_amount_minor",
    "max_bonus": "max_bonus_minor",
    "min_deposit": "min_deposit_minor",
    "max_bet": "max_bet_minor",
    "max_cashout": "max_cashout_minor",
    "free_spin_value": "free_spin_value_minor",
}


def _money(value: int | None, currency: str) -> str | None:
    return None if value is None else format_minor(value, currency)


def promotion_json(p: Promotion, *, staff: bool = False, refusal=None) -> dict[str, Any]:
    cur = p.currency
    out: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "terms": p.terms,
        "image_url": p.image_url,
        "type": p.type,
        "status": p.status,
        "currency": cur,
        "match_percent": p.match_percent,
        "max_bonus": _money(p.max_bonus_minor, cur),
        "min_deposit": _money(p.min_deposit_minor, cur),
        "bonus_amount": _money(p.bonus_amount_minor, cur),
        "cashback_percent": p.cashback_percent,
        "wagering_multiplier": p.wagering_multiplier,
        "default_contribution": p.default_contribution,
        "game_contributions": p.game_contributions or {},
        "max_bet": _money(p.max_bet_minor, cur),
        "max_cashout": _money(p.max_cashout_minor, cur),
        "bonus_valid_days": p.bonus_valid_days,
        "starts_at": p.starts_at.isoformat() if p.starts_at else None,
        "ends_at": p.ends_at.isoformat() if p.ends_at else None,
        "countries": p.countries or [],
        "first_deposit_only": p.first_deposit_only,
        "auto_apply": p.auto_apply,
        "requires_voucher": p.voucher_code is not None,
        "free_spins_count": p.free_spins_count,
        "free_spins_game_id": p.free_spins_game_id,
        "free_spin_value": _money(p.free_spin_value_minor, cur),
        "free_spins_valid_days": p.free_spins_valid_days,
    }
    if staff:
        out.update(
            voucher_code=p.voucher_code,
            segment_id=p.segment_id,
            max_claims_per_player=p.max_claims_per_player,
            max_claims_total=p.max_claims_total,
            claims_count=p.claims_count,
            priority=p.priority,
            cashback_period_days=p.cashback_period_days,
            created_at=p.created_at.isoformat() if p.created_at else None,
            updated_at=p.updated_at.isoformat() if p.updated_at else None,
        )
    if refusal is not False:
        out["eligible"] = refusal is None
        out["ineligible_reason"] = None if refusal is None else refusal[1]
    return out


class PromotionSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    terms = fields.String(allow_none=True)
    image_url = fields.String(allow_none=True)
    type = fields.String()
    status = fields.String()
    currency = fields.String()
    match_percent = fields.Integer()
    max_bonus = fields.String(allow_none=True)
    min_deposit = fields.String(allow_none=True)
    bonus_amount = fields.String(allow_none=True)
    cashback_percent = fields.Integer()
    wagering_multiplier = fields.Integer()
    default_contribution = fields.Integer()
    game_contributions = fields.Dict(keys=fields.String(), values=fields.Integer())
    max_bet = fields.String(allow_none=True)
    max_cashout = fields.String(allow_none=True)
    bonus_valid_days = fields.Integer()
    starts_at = fields.String(allow_none=True)
    ends_at = fields.String(allow_none=True)
    countries = fields.List(fields.String())
    first_deposit_only = fields.Boolean()
    auto_apply = fields.Boolean()
    requires_voucher = fields.Boolean()
    free_spins_count = fields.Integer()
    free_spins_game_id = fields.Integer(allow_none=True)
    free_spin_value = fields.String(allow_none=True)
    free_spins_valid_days = fields.Integer()
    eligible = fields.Boolean()
    ineligible_reason = fields.String(allow_none=True)
    # staff only
    voucher_code = fields.String(allow_none=True)
    segment_id = fields.Integer(allow_none=True)
    max_claims_per_player = fields.Integer(allow_none=True)
    max_claims_total = fields.Integer(allow_none=True)
    claims_count = fields.Integer()
    priority = fields.Integer()
    cashback_period_days = fields.Integer()
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class BonusSchema(Schema):
    id = fields.Integer()
    user_id = fields.Integer()
    promotion_id = fields.Integer()
    promotion_name = fields.String(allow_none=True)
    status = fields.String()
    currency = fields.String()
    amount = fields.String()
    wagering_required = fields.String()
    wagering_progress = fields.String()
    wagering_percent = fields.Integer()
    max_bet = fields.String(allow_none=True)
    max_cashout = fields.String(allow_none=True)
    converted = fields.String()
    forfeited = fields.String()
    deposit = fields.String(allow_none=True)
    claimed_at = fields.String(allow_none=True)
    granted_at = fields.String(allow_none=True)
    expires_at = fields.String(allow_none=True)
    ended_at = fields.String(allow_none=True)
    end_reason = fields.String(allow_none=True)
    #: Free-spins bonuses: the grant (spins left, game, stake per spin, winnings).
    free_spins = fields.Dict(allow_none=True)


class FreeSpinsSchema(Schema):
    id = fields.String()
    bonus_id = fields.Integer()
    promotion_id = fields.Integer()
    game = fields.Dict(allow_none=True)
    status = fields.String()
    spins_total = fields.Integer()
    spins_used = fields.Integer()
    spins_remaining = fields.Integer()
    spin_value = fields.String()
    currency = fields.String()
    won = fields.String()
    wagering_multiplier = fields.Integer()
    expires_at = fields.String()


class FreeSpinsArgs(Schema):
    active = fields.Boolean(load_default=True)


class ClaimArgs(Schema):
    voucher_code = fields.String(load_default=None, validate=validate.Length(max=64))


class VoucherArgs(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))


def _dump_bonus(b) -> dict[str, Any]:
    return bonuses.bonus_json(b)


@blp.route("/promotions/active")
class Active(MethodView):
    @login_optional
    @blp.response(200, envelope_of(PromotionSchema, many=True))
    def get(self):
        """Running offers (voucher-only ones stay hidden); with a token, eligibility too."""
        user = g.get("user")
        rows = promotions.active_promotions(user.id if user else None)
        return {
            "data": [
                promotion_json(p, refusal=promotions.refusal(p, user) if user else False)
                for p in rows
            ]
        }


@blp.route("/promotions/<int:promotion_id>")
class One(MethodView):
    @login_optional
    @blp.response(200, envelope_of(PromotionSchema))
    def get(self, promotion_id):
        """One promotion with its terms (and, with a token, whether you may claim it)."""
        p = promotions.get_promotion(promotion_id)
        user = g.get("user")
        hidden = p.voucher_code is not None or not promotions.visible_to(p, user and user.id)
        if p.status != "active" or hidden:
            raise NotFound("Promotion not found")
        return {"data": promotion_json(p, refusal=promotions.refusal(p, user) if user else False)}


@blp.route("/promotions/claim/<int:promotion_id>")
class Claim(MethodView):
    @player_required
    @blp.arguments(ClaimArgs)
    @blp.response(201, envelope_of(BonusSchema))
    def post(self, args, promotion_id):
        """Claim an offer; refusals say why (PROMOTION_NOT_AVAILABLE with a reason)."""
        bonus = promotions.claim(g.user, promotion_id, voucher=args["voucher_code"])
        return {"data": _dump_bonus(bonus)}, 201


@blp.route("/promotions/voucher")
class Voucher(MethodView):
    @player_required
    @blp.arguments(VoucherArgs)
    @blp.response(201, envelope_of(BonusSchema))
    def post(self, args):
        """Redeem a voucher code."""
        return {"data": _dump_bonus(promotions.redeem_voucher(g.user, args["code"]))}, 201


@blp.route("/promotions/history")
class History(MethodView):
    @player_required
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(BonusSchema, many=True))
    def get(self, args):
        """Your bonuses, newest first, with wagering progress."""
        rows, total = promotions.history(g.user, args["page"], args["limit"])
        return {
            "data": [_dump_bonus(b) for b in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }


@blp.route("/promotions/free-spins")
class FreeSpins(MethodView):
    @player_required
    @blp.arguments(FreeSpinsArgs, location="query")
    @blp.response(200, envelope_of(FreeSpinsSchema, many=True))
    def get(self, args):
        """Your free spins: remaining spins per game (``?active=false`` for all, ended too)."""
        return {"data": free_spins.player_grants(g.user.id, active_only=args["active"])}


@blp.route("/promotions/bonuses/<int:bonus_id>/forfeit")
class Forfeit(MethodView):
    @player_required
    @blp.response(200, envelope_of(BonusSchema))
    def post(self, bonus_id):
        """Give up a bonus: an active one's remaining bonus balance is forfeited."""
        return {"data": _dump_bonus(promotions.forfeit(g.user, bonus_id))}


# --- staff -----------------------------------------------------------------------------------


class PromotionArgs(Schema):
    """What staff may set on a promotion (the console's form is built from this schema)."""

    name = fields.String(validate=validate.Length(min=1, max=120))
    description = fields.String(allow_none=True, metadata={"widget": "textarea"})
    terms = fields.String(allow_none=True, metadata={"widget": "textarea"})
    image_url = fields.String(allow_none=True, validate=validate.Length(max=500))
    type = fields.String(validate=validate.OneOf(PROMOTION_TYPES))
    currency = Currency()
    match_percent = fields.Integer(
        validate=validate.Range(min=0, max=1000),
        metadata={"description": "Deposit match and reload: bonus = deposit * percent / 100."},
    )
    cashback_percent = fields.Integer(validate=validate.Range(min=0, max=100))
    cashback_period_days = fields.Integer(validate=validate.Range(min=1, max=90))
    wagering_multiplier = fields.Integer(
        validate=validate.Range(min=0, max=200),
        metadata={"description": "Wagering required = bonus * multiplier (0: converts at once)."},
    )
    default_contribution = fields.Integer(
        validate=validate.Range(min=0, max=100),
        metadata={"description": "% of a stake that counts on games not listed below."},
    )
    game_contributions = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "One game id=percent per line, e.g. 12=10."},
    )
    bonus_valid_days = fields.Integer(validate=validate.Range(min=1, max=365))
    starts_at = fields.AwareDateTime(allow_none=True)
    ends_at = fields.AwareDateTime(allow_none=True)
    max_claims_per_player = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "Empty: no limit."},
    )
    max_claims_total = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "Empty: no limit."},
    )
    countries = fields.List(
        fields.String(validate=validate.Length(equal=2)),
        metadata={"description": "ISO country codes, comma-separated; empty: everywhere."},
    )
    voucher_code = fields.String(
        allow_none=True,
        validate=validate.Length(max=64),
        metadata={"description": "Set one to make the offer voucher-only (hidden from lists)."},
    )
    segment_id = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "CRM segment id: only its players see and receive the offer."},
    )
    first_deposit_only = fields.Boolean(metadata={"description": "A welcome offer."})
    auto_apply = fields.Boolean(
        metadata={"description": "Applied to a qualifying deposit without a claim."}
    )
    priority = fields.Integer(validate=validate.Range(min=-1000, max=1000))
    bonus_amount = Amount(
        allow_none=True, metadata={"description": "No-deposit bonus: the fixed amount."}
    )
    max_bonus = Amount(allow_none=True)
    min_deposit = Amount(allow_none=True)
    max_bet = Amount(allow_none=True, metadata={"description": "Largest stake while wagering."})
    max_cashout = Amount(allow_none=True)
    #: ``free_spins``: number of spins, the game (our id), the stake each spin plays with,
    #: and how many days the spins may be used; ``wagering_multiplier`` applies to winnings.
    free_spins_count = fields.Integer(
        validate=validate.Range(min=0, max=1000),
        metadata={"description": "Free spins: how many rounds the claim grants."},
    )
    free_spins_game_id = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1),
        metadata={"description": "Free spins: the game id (its provider must support them)."},
    )
    free_spin_value = Amount(
        allow_none=True, metadata={"description": "Free spins: the stake each spin plays with."}
    )
    free_spins_valid_days = fields.Integer(
        validate=validate.Range(min=1, max=365),
        metadata={"description": "Free spins: days the spins may be used after the claim."},
    )


class NewPromotionArgs(PromotionArgs):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    type = fields.String(required=True, validate=validate.OneOf(PROMOTION_TYPES))
    currency = Currency(required=True)


class StatusArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(PROMOTION_STATUSES))


def to_model(args: dict[str, Any], currency: str) -> dict[str, Any]:
    """Decimal amounts -> minor units in the promotion's currency (exactness checked)."""
    data = {k: v for k, v in args.items() if k not in MONEY_FIELDS}
    currency = normalize_currency(args.get("currency") or currency)
    for name, column in MONEY_FIELDS.items():
        if name not in args:
            continue
        value = args[name]
        if value is None:
            data[column] = 0 if name in ("bonus_amount", "min_deposit", "free_spin_value") else None
            continue
        try:
            minor = parse_minor(value, currency)
        except MoneyError as exc:
            raise ValidationError.field(name, str(exc)) from None
        if minor < 0:
            raise ValidationError.field(name, "Must not be negative")
        data[column] = minor
    return data


@blp.route("/admin/promotions")
class AdminList(MethodView):
    @permission_required("promotions.manage")
    @blp.arguments(StatusArgs, location="query")
    @blp.response(200, envelope_of(PromotionSchema, many=True))
    def get(self, args):
        """All promotions, newest first (filter by status)."""
        rows, total = promotions.list_promotions(args["status"], args["page"], args["limit"])
        return {
            "data": [promotion_json(p, staff=True, refusal=False) for p in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }

    @permission_required("promotions.manage")
    @blp.arguments(NewPromotionArgs)
    @blp.response(201, envelope_of(PromotionSchema))
    def post(self, args):
        """Create a promotion (starts as a draft; activate it to offer it)."""
        p = promotions.create_promotion(to_model(args, args["currency"]), actor=g.user)
        return {"data": promotion_json(p, staff=True, refusal=False)}, 201


@blp.route("/admin/promotions/<int:promotion_id>")
class AdminOne(MethodView):
    @permission_required("promotions.manage")
    @blp.response(200, envelope_of(PromotionSchema))
    def get(self, promotion_id):
        p = promotions.get_promotion(promotion_id)
        return {"data": promotion_json(p, staff=True, refusal=False)}

    @permission_required("promotions.manage")
    @blp.arguments(PromotionArgs)
    @blp.response(200, envelope_of(PromotionSchema))
    def put(self, args, promotion_id):
        """Change a promotion; bonuses already granted keep the rules they were granted with."""
        current = promotions.get_promotion(promotion_id)
        p = promotions.update_promotion(
            promotion_id, to_model(args, current.currency), actor=g.user
        )
        return {"data": promotion_json(p, staff=True, refusal=False)}


def _status_route(action: str, status: str) -> None:
    @blp.route(f"/admin/promotions/<int:promotion_id>/{action}", endpoint=f"promotion_{action}")
    class Toggle(MethodView):
        @permission_required("promotions.manage")
        @blp.response(200, envelope_of(PromotionSchema))
        def post(self, promotion_id):
            p = promotions.set_status(promotion_id, status, actor=g.user)
            return {"data": promotion_json(p, staff=True, refusal=False)}

    Toggle.__name__ = f"Promotion{action.title()}"


_status_route("activate", "active")
_status_route("deactivate", "inactive")


@blp.route("/admin/promotions/<int:promotion_id>/bonuses")
class AdminBonuses(MethodView):
    @permission_required("promotions.manage")
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, envelope_of(BonusSchema, many=True))
    def get(self, args, promotion_id):
        """Who claimed this promotion, with each bonus's wagering state."""
        promotions.get_promotion(promotion_id)
        rows, total = promotions.bonuses_of_promotion(promotion_id, args["page"], args["limit"])
        return {
            "data": [{**_dump_bonus(b), "user_id": b.user_id} for b in rows],
            "meta": page_meta(args["page"], args["limit"], total),
        }
