"""``/api/lottery`` (players), ``/api/user/tickets`` and ``/api/admin/lottery`` (staff)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.core.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from app.core.idempotency import idempotent
from app.core.schemas import ID_RANGE, Amount, Currency, envelope_of
from app.identity.auth import permission_required, player_required
from app.prizes import lottery
from app.prizes.models import LOTTERY_PRIZE_TYPES, LOTTERY_STATUSES

blp = Blueprint("lottery", __name__, url_prefix="/api/lottery", description="Lottery draws")
user_blp = Blueprint(
    "lottery_user", __name__, url_prefix="/api/user", description="Lottery: my tickets"
)
admin_blp = Blueprint(
    "admin_lottery", __name__, url_prefix="/api/admin/lottery", description="Staff: lottery"
)


class DrawSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String(allow_none=True)
    currency = fields.String()
    prize_type = fields.String()
    prize_amount = fields.String()
    prize_description = fields.String(allow_none=True)
    ticket_price = fields.String()
    max_tickets = fields.Integer()
    max_per_player = fields.Integer()
    tickets_sold = fields.Integer()
    sales_open_at = fields.String()
    sales_close_at = fields.String()
    draw_at = fields.String()
    state = fields.String()
    server_seed_hash = fields.String()
    server_seed = fields.String(allow_none=True)
    public_value = fields.String(allow_none=True)
    winning_ticket_id = fields.Integer(allow_none=True)
    winning_number = fields.Integer(allow_none=True)
    drawn_at = fields.String(allow_none=True)


class TicketSchema(Schema):
    id = fields.Integer()
    draw_id = fields.Integer()
    number = fields.Integer()
    price = fields.String()
    currency = fields.String()
    status = fields.String()
    won = fields.Boolean()
    draw_state = fields.String()
    purchased_at = fields.String()


class PurchaseSchema(Schema):
    draw = fields.Nested(DrawSchema)
    tickets = fields.List(fields.Nested(TicketSchema))


class VerifySchema(Schema):
    draw_id = fields.Integer()
    server_seed = fields.String()
    server_seed_hash = fields.String()
    seed_hash_matches = fields.Boolean()
    ticket_ids = fields.List(fields.Integer())
    public_value = fields.String(allow_none=True)
    public_value_matches = fields.Boolean()
    winning_index = fields.Integer(allow_none=True)
    winning_ticket_id = fields.Integer(allow_none=True)
    recomputed_ticket_id = fields.Integer(allow_none=True)
    verified = fields.Boolean()
    formula = fields.String()


class DrawListArgs(Schema):
    status = fields.String(validate=validate.OneOf(LOTTERY_STATUSES))


class BuySchema(Schema):
    count = fields.Integer(
        required=True, validate=validate.Range(min=1, max=lottery.MAX_PER_PURCHASE)
    )


class TicketArgs(Schema):
    draw_id = fields.Integer(validate=ID_RANGE)


class DrawCreateSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True)
    currency = Currency(required=True)
    prize_type = fields.String(load_default="cash", validate=validate.OneOf(LOTTERY_PRIZE_TYPES))
    prize_amount = Amount(load_default=0)
    prize_description = fields.String(allow_none=True)
    ticket_price = Amount(required=True)
    max_tickets = fields.Integer(required=True, validate=validate.Range(min=1, max=10_000_000))
    max_per_player = fields.Integer(validate=validate.Range(min=1))
    sales_open_at = fields.AwareDateTime(required=True)
    sales_close_at = fields.AwareDateTime(required=True)
    draw_at = fields.AwareDateTime()


class CancelSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


@blp.route("/draws")
class Draws(MethodView):
    @blp.arguments(DrawListArgs, location="query")
    @blp.response(200, envelope_of(DrawSchema, many=True))
    def get(self, args):
        """Draws, latest draw time first (``?status=scheduled|drawn|cancelled``)."""
        return {"data": [lottery.draw_json(d) for d in lottery.listing(args.get("status"))]}


@blp.route("/draws/<int:draw_id>")
class Draw(MethodView):
    @blp.response(200, envelope_of(DrawSchema))
    def get(self, draw_id: int):
        """One draw: prize, sales, seed commitment; after the draw, seed, public value, winner."""
        return {"data": lottery.draw_json(lottery.get(draw_id))}


@blp.route("/draws/<int:draw_id>/tickets")
class BuyTickets(MethodView):
    @player_required
    @blp.arguments(BuySchema)
    @idempotent("lottery.buy")
    @blp.response(201, envelope_of(PurchaseSchema))
    @blp.doc(parameters=[IDEMPOTENCY_KEY])
    def post(self, data, draw_id: int):
        """Buy tickets from the cash wallet (``Idempotency-Key`` header: a retry is a no-op)."""
        draw, tickets = lottery.buy(draw_id, g.user, data["count"])
        return {
            "data": {
                "draw": lottery.draw_json(draw),
                "tickets": [lottery.ticket_json(t) for t in tickets],
            }
        }


@blp.route("/draws/<int:draw_id>/verify")
class VerifyDraw(MethodView):
    @blp.response(200, envelope_of(VerifySchema))
    def get(self, draw_id: int):
        """Recompute the winner from the revealed seed and the sold ticket ids."""
        return {"data": lottery.verify(draw_id)}


@user_blp.route("/tickets")
class MyTickets(MethodView):
    @player_required
    @user_blp.arguments(TicketArgs, location="query")
    @user_blp.response(200, envelope_of(TicketSchema, many=True))
    def get(self, args):
        """My tickets, newest first (``?draw_id=``)."""
        rows = lottery.tickets_of(g.user.id, args.get("draw_id"))
        return {"data": [lottery.ticket_json(t) for t in rows]}


@admin_blp.route("/draws")
class AdminDraws(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.arguments(DrawCreateSchema)
    @admin_blp.response(201, envelope_of(DrawSchema))
    def post(self, data):
        """Create a draw; its seed hash is committed now (audited)."""
        return {"data": lottery.draw_json(lottery.create(data, actor=g.user))}


@admin_blp.route("/draws/<int:draw_id>/draw")
class AdminRunDraw(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.response(200, envelope_of(DrawSchema))
    def post(self, draw_id: int):
        """Run a due draw now (the periodic job does it otherwise); idempotent."""
        return {"data": lottery.draw_json(lottery.run_draw(draw_id, actor=g.user))}


@admin_blp.route("/draws/<int:draw_id>/cancel")
class AdminCancelDraw(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.arguments(CancelSchema)
    @admin_blp.response(200, envelope_of(DrawSchema))
    def post(self, data, draw_id: int):
        """Cancel a draw not yet drawn and refund every ticket (audited, idempotent)."""
        return {
            "data": lottery.draw_json(lottery.cancel(draw_id, actor=g.user, reason=data["reason"]))
        }
