"""Tournaments in the console: list, create/edit (with the prize table), leaderboard and
settlement status, cancel (refunds fees) and delete before the start. ``promotions.manage``.

The rules live in ``app.prizes.tournaments``; these views turn form fields into the same
request dictionary the JSON API sends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import ConfirmForm, DecisionForm, TournamentForm
from app.blueprints.console.listing import paginate
from app.core.errors import AppError, ValidationError
from app.core.extensions import db
from app.core.money import format_minor
from app.identity.models import User
from app.prizes import tournament_board, tournaments
from app.prizes.models import Tournament, TournamentParticipant

PERMISSION = "promotions.manage"
SORTABLE = {
    "id": Tournament.id,
    "name": Tournament.name,
    "starts": Tournament.starts_at,
    "ends": Tournament.ends_at,
    "status": Tournament.status,
}


def _counts(ids: list[int]) -> dict[int, int]:
    p = TournamentParticipant
    rows = db.session.execute(
        select(p.tournament_id, func.count(p.id))
        .where(p.tournament_id.in_(ids))
        .group_by(p.tournament_id)
    ).all()
    return dict(rows)


def _awaiting(tournament_id: int) -> int:
    p = TournamentParticipant
    return db.session.execute(
        select(func.count(p.id)).where(
            p.tournament_id == tournament_id, p.prize_status == "awaiting"
        )
    ).scalar_one()


def _row_values(tour: Tournament | None) -> dict[str, Any]:
    counts = _counts([tour.id]) if tour is not None else {}
    return {"tour": tour, "counts": counts, "state_of": tournaments.state}


@bp.get("/tournaments")
@console_view(PERMISSION)
def tournaments_list():
    status = request.args.get("status", "")
    query = select(Tournament)
    if status in ("scheduled", "settled", "cancelled"):
        query = query.where(Tournament.status == status)
    listing = paginate(query, sortable=SORTABLE, default_sort="id", filters={"status": status})
    return render_template(
        "console/tournaments/list.html",
        listing=listing,
        counts=_counts([t.id for t in listing.items]),
        state_of=tournaments.state,
    )


# --------------------------------------------------------------------------- create / edit


def _prize_lines(tour: Tournament) -> str:
    return "\n".join(
        format_minor(amount, tour.currency) + (" bonus" if kind == "bonus" else "")
        for amount, kind in tournaments.prize_table(tour)
    )


def _request_data(form: TournamentForm) -> dict[str, Any]:
    """The form as the service's request dictionary (the JSON API's shape)."""
    prizes: list[Any] = []
    for n, line in enumerate((form.prizes.data or "").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 1:
            prizes.append(parts[0])
        elif len(parts) == 2 and parts[1].lower() in tournaments.PRIZE_TYPES:
            prizes.append({"amount": parts[0], "type": parts[1].lower()})
        else:
            raise ValidationError.field("prizes", f"Line {n}: an amount, optionally 'bonus'")
    games = [int(x) for x in (form.game_ids.data or "").replace(" ", "").split(",") if x]
    return {
        "name": form.name.data.strip(),
        "description": (form.description.data or "").strip() or None,
        "currency": form.currency.data.strip().upper(),
        "starts_at": form.starts_at.data.replace(tzinfo=UTC),
        "ends_at": form.ends_at.data.replace(tzinfo=UTC),
        "scoring": form.scoring.data,
        "entry": form.entry.data,
        "entry_fee": (form.entry_fee.data or "0").strip(),
        "min_bet": (form.min_bet.data or "0").strip(),
        "max_participants": form.max_participants.data,
        "game_ids": games or None,
        "prizes": prizes,
        "bonus_promotion_id": form.bonus_promotion_id.data,
    }


def _show_errors(form: TournamentForm, exc: AppError) -> str:
    for problem in exc.errors or []:
        field = getattr(form, problem.get("field", ""), None)
        if field is not None:
            field.errors = [*field.errors, problem["message"]]
    return exc.message


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _changes(tour: Tournament, data: dict[str, Any]) -> dict[str, Any]:
    """Only what the form changed: after the start, untouched frozen fields must not count
    as edits (the form shows times to the minute)."""
    parsed = tournaments.parse_fields(data, data.get("currency") or tour.currency)
    changed = {}
    for key, value in data.items():
        current = getattr(tour, key)
        new = parsed.get(key, value)
        if isinstance(current, datetime) and isinstance(new, datetime):
            if _minute(current) == _minute(new):
                continue
        elif key == "prizes":
            if [tuple(p.values()) for p in new] == [
                (a, k) for a, k in tournaments.prize_table(tour)
            ]:
                continue
        elif current == new:
            continue
        changed[key] = value
    return changed


@bp.route("/tournaments/new", methods=["GET", "POST"])
@console_view(PERMISSION)
def tournament_new():
    form = TournamentForm()
    error = None
    if form.validate_on_submit():
        try:
            tour = tournaments.create(_request_data(form), actor=current_user)
        except AppError as exc:
            error = _show_errors(form, exc)
        else:
            flash(_("Tournament %(name)s created.", name=tour.name), "success")
            return redirect(url_for("console.tournament_detail", tournament_id=tour.id))
    status = 400 if form.errors or error else 200
    return render_template(
        "console/tournaments/form.html", form=form, error=error, tour=None, started=False
    ), status


@bp.route("/tournaments/<int:tournament_id>/edit", methods=["GET", "POST"])
@console_view(PERMISSION)
def tournament_edit(tournament_id: int):
    tour = db.session.get(Tournament, tournament_id)
    if tour is None:
        abort(404)
    form = TournamentForm()
    if request.method == "GET":
        form.process(
            data={
                "name": tour.name,
                "description": tour.description,
                "currency": tour.currency,
                "starts_at": tour.starts_at.replace(tzinfo=None),
                "ends_at": tour.ends_at.replace(tzinfo=None),
                "scoring": tour.scoring,
                "entry": tour.entry,
                "entry_fee": format_minor(tour.entry_fee, tour.currency),
                "min_bet": format_minor(tour.min_bet, tour.currency),
                "max_participants": tour.max_participants,
                "game_ids": ", ".join(str(g) for g in tour.game_ids or []),
                "prizes": _prize_lines(tour),
                "bonus_promotion_id": tour.bonus_promotion_id,
            }
        )
    error = None
    if form.validate_on_submit():
        try:
            changes = _changes(tour, _request_data(form))
            if changes:
                tournaments.update_tournament(tour.id, changes, actor=current_user)
        except AppError as exc:
            db.session.rollback()
            error = _show_errors(form, exc)
        else:
            flash(_("Tournament saved.") if changes else _("Nothing changed."), "success")
            return redirect(url_for("console.tournament_detail", tournament_id=tournament_id))
    status = 400 if form.errors or error else 200
    started = tournaments.state(tour) != "upcoming"
    return render_template(
        "console/tournaments/form.html", form=form, error=error, tour=tour, started=started
    ), status


# --------------------------------------------------------------------------- detail


@bp.get("/tournaments/<int:tournament_id>")
@console_view(PERMISSION)
def tournament_detail(tournament_id: int):
    tour = db.session.get(Tournament, tournament_id)
    if tour is None:
        abort(404)
    p = TournamentParticipant
    board = list(
        db.session.scalars(
            select(p)
            .where(p.tournament_id == tour.id)
            .order_by(*tournament_board.ordering())
            .limit(100)
        )
    )
    users = {
        u.id: u
        for u in db.session.scalars(select(User).where(User.id.in_([b.user_id for b in board])))
    }
    fees = db.session.execute(
        select(
            func.count(p.id),
            func.coalesce(func.sum(p.fee_paid), 0),
            func.count(p.fee_refund_transaction_id),
        ).where(p.tournament_id == tour.id, p.fee_paid > 0)
    ).one()
    return render_template(
        "console/tournaments/detail.html",
        tour=tour,
        state=tournaments.state(tour),
        board=board,
        users=users,
        prizes=tournaments.prize_table(tour),
        participants=_counts([tour.id]).get(tour.id, 0),
        fees={"paid": fees[0], "total": int(fees[1]), "refunded": fees[2]},
        awaiting=_awaiting(tour.id),
        score_text=tournaments.score_text,
    )


# --------------------------------------------------------------------------- decisions


def _tour_or_404(tournament_id: int) -> Tournament:
    tour = db.session.get(Tournament, tournament_id)
    if tour is None:
        abort(404)
    return tour


@bp.route("/tournaments/<int:tournament_id>/delete", methods=["GET", "POST"])
@console_view(PERMISSION)
def tournament_delete(tournament_id: int):
    tour = _tour_or_404(tournament_id)
    name = tour.name

    def act(context: str):
        tournaments.delete_tournament(tournament_id, actor=current_user)
        return (
            "console/tournaments/_row.html",
            _row_values(None),
            f"Tournament {name} deleted; entry fees refunded.",
            url_for("console.tournaments_list"),
        )

    dialog = {
        "title": f"Delete {name}",
        "action_url": url_for("console.tournament_delete", tournament_id=tournament_id),
        "submit_label": "Delete",
        "danger": True,
        "description": "Only before the start. Every paid entry fee is refunded first.",
    }
    return decisions.run(
        ConfirmForm(),
        contexts={
            "row": f"#tournament-row-{tournament_id}",
            "panel": f"#tournament-row-{tournament_id}",
        },
        dialog=dialog,
        act=act,
    )


@bp.route("/tournaments/<int:tournament_id>/cancel", methods=["GET", "POST"])
@console_view(PERMISSION)
def tournament_cancel(tournament_id: int):
    tour = _tour_or_404(tournament_id)
    form = DecisionForm()

    def act(context: str):
        cancelled = tournaments.cancel(
            tournament_id, actor=current_user, reason=form.reason.data or ""
        )
        db.session.expire_all()
        return (
            "console/tournaments/_row.html",
            _row_values(db.session.get(Tournament, cancelled.id)),
            f"Tournament {cancelled.name} cancelled; entry fees refunded.",
            url_for("console.tournament_detail", tournament_id=tournament_id),
        )

    dialog = {
        "title": f"Cancel {tour.name}",
        "action_url": url_for("console.tournament_cancel", tournament_id=tournament_id),
        "submit_label": "Cancel tournament",
        "danger": True,
        "description": "No prizes are paid; every entry fee is refunded. This cannot be undone.",
    }
    return decisions.run(
        form,
        contexts={
            "row": f"#tournament-row-{tournament_id}",
            "panel": f"#tournament-row-{tournament_id}",
        },
        dialog=dialog,
        act=act,
    )
