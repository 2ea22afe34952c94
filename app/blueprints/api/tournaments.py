"""``/api/tournaments`` (players) and ``/api/admin/tournaments`` (staff, ``promotions.manage``)."""

from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from marshmallow import ValidationError as MarshmallowError

from app.core.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_KEY
from app.core.idempotency import idempotent
from app.core.schemas import Amount, Currency, envelope_of
from app.identity.auth import login_required, permission_required, player_required
from app.prizes import tournaments
from app.prizes.models import TOURNAMENT_ENTRIES, TOURNAMENT_SCORING

blp = Blueprint("tournaments", __name__, url_prefix="/api/tournaments", description="Tournaments")
admin_blp = Blueprint(
    "admin_tournaments",
    __name__,
    url_prefix="/api/admin/tournaments",
    description="Staff: tournaments",
)


class PrizeSchema(Schema):
    rank = fields.Integer()
    amount = fields.String()
    type = fields.String()


class PrizeItem(fields.Field):
    """A prize: an amount (cash) or ``{"amount": .., "type": "cash" | "bonus"}``."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict):
            kind = value.get("type", "cash")
            if kind not in tournaments.PRIZE_TYPES or set(value) - {"amount", "type"}:
                raise MarshmallowError("A prize is {amount, type: cash|bonus}")
            return {"amount": Amount().deserialize(value.get("amount")), "type": kind}
        return Amount().deserialize(value)


class TournamentSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    currency = fields.String()
    game_ids = fields.List(fields.Integer(), allow_none=True)
    starts_at = fields.String()
    ends_at = fields.String()
    entry = fields.String()
    scoring = fields.String()
    min_bet = fields.String()
    max_participants = fields.Integer(allow_none=True)
    participants = fields.Integer()
    entry_fee = fields.String()
    prizes = fields.List(fields.Nested(PrizeSchema))
    state = fields.String()
    settled_at = fields.String(allow_none=True)


class BoardEntrySchema(Schema):
    rank = fields.Integer()
    player = fields.String()
    score = fields.String()
    bets = fields.Integer()
    prize = fields.String(allow_none=True)


class LeaderboardSchema(Schema):
    tournament_id = fields.Integer()
    state = fields.String()
    top = fields.List(fields.Nested(BoardEntrySchema))
    me = fields.Nested(BoardEntrySchema, allow_none=True)


class LeaderboardArgs(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100))


class JoinSchema(Schema):
    tournament_id = fields.Integer()
    joined_at = fields.String()


class TournamentWriteSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=120))
    description = fields.String(allow_none=True)
    currency = Currency()
    game_ids = fields.List(fields.Integer(), allow_none=True)
    starts_at = fields.AwareDateTime(default_timezone=None)
    ends_at = fields.AwareDateTime(default_timezone=None)
    entry = fields.String(validate=validate.OneOf(TOURNAMENT_ENTRIES))
    scoring = fields.String(validate=validate.OneOf(TOURNAMENT_SCORING))
    min_bet = Amount()
    max_participants = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    prizes = fields.List(PrizeItem(), validate=validate.Length(max=100))
    entry_fee = Amount()
    bonus_promotion_id = fields.Integer(allow_none=True)


class TournamentCancelSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))


class TournamentCreateSchema(TournamentWriteSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    currency = Currency(required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)


@blp.route("/active")
class ActiveTournaments(MethodView):
    @blp.response(200, envelope_of(TournamentSchema, many=True))
    def get(self):
        """Running and upcoming tournaments."""
        return {"data": [tournaments.as_json(t) for t in tournaments.active()]}


@blp.route("/<int:tournament_id>")
class TournamentDetail(MethodView):
    @blp.response(200, envelope_of(TournamentSchema))
    def get(self, tournament_id: int):
        """One tournament: rules, window, prize table, state."""
        return {"data": tournaments.as_json(tournaments.get(tournament_id))}


@blp.route("/<int:tournament_id>/join")
class JoinTournament(MethodView):
    @player_required
    @idempotent("tournament.join")
    @blp.response(200, envelope_of(JoinSchema))
    @blp.doc(parameters=[IDEMPOTENCY_KEY])
    def post(self, tournament_id: int):
        """Opt in, paying the entry fee if there is one (idempotent: a second join returns the
        first and charges nothing; an ``Idempotency-Key`` also replays the first answer)."""
        row = tournaments.join(tournament_id, g.user)
        return {
            "data": {"tournament_id": row.tournament_id, "joined_at": row.joined_at.isoformat()}
        }


@blp.route("/<int:tournament_id>/leaderboard")
class Leaderboard(MethodView):
    @login_required
    @blp.arguments(LeaderboardArgs, location="query")
    @blp.response(200, envelope_of(LeaderboardSchema))
    def get(self, args, tournament_id: int):
        """Top N (``?limit=``) and the caller's own position (Redis while running)."""
        tour = tournaments.get(tournament_id)
        return {"data": tournaments.board_json(tour, g.user.id, args["limit"])}


@admin_blp.route("")
class AdminTournaments(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.response(200, envelope_of(TournamentSchema, many=True))
    def get(self):
        """Every tournament, newest first."""
        return {"data": [tournaments.as_json(t) for t in tournaments.all_tournaments()]}

    @permission_required("promotions.manage")
    @admin_blp.arguments(TournamentCreateSchema)
    @admin_blp.response(201, envelope_of(TournamentSchema))
    def post(self, data):
        """Create a tournament (audited)."""
        return {"data": tournaments.as_json(tournaments.create(data, actor=g.user))}


@admin_blp.route("/<int:tournament_id>")
class AdminTournament(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.arguments(TournamentWriteSchema)
    @admin_blp.response(200, envelope_of(TournamentSchema))
    def put(self, data, tournament_id: int):
        """Change a tournament; games, scoring, entry, min bet and start only before it starts."""
        tour = tournaments.update_tournament(tournament_id, data, actor=g.user)
        return {"data": tournaments.as_json(tour)}

    @permission_required("promotions.manage")
    @admin_blp.response(204)
    def delete(self, tournament_id: int):
        """Delete a tournament that has not started; paid entry fees are refunded (audited)."""
        tournaments.delete_tournament(tournament_id, actor=g.user)


@admin_blp.route("/<int:tournament_id>/cancel")
class CancelTournament(MethodView):
    @permission_required("promotions.manage")
    @admin_blp.arguments(TournamentCancelSchema)
    @admin_blp.response(200, envelope_of(TournamentSchema))
    def post(self, data, tournament_id: int):
        """Cancel before settlement: no prizes, every entry fee refunded (audited)."""
        tour = tournaments.cancel(tournament_id, actor=g.user, reason=data["reason"])
        return {"data": tournaments.as_json(tour)}
