"""Bets and rounds, the provider callback log with replay, games and providers."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view, is_htmx
from app.blueprints.console.forms import ConfirmForm
from app.blueprints.console.listing import paged, paginate, player_filter, users_by_id
from app.blueprints.console.payments_views import _day, _day_after
from app.core.db import parse_row_id
from app.core.errors import AppError
from app.core.extensions import db
from app.play import games, rounds
from app.play.callbacks import log as callback_log
from app.play.callbacks import replay
from app.play.models import GAME_STATUSES, Game, Provider, ProviderCallback


def _int_or_none(value: str) -> int | None:
    return parse_row_id(value)


def _id_filter(value: str) -> str:
    """A row-id query filter kept as text for the form ("" when not an id)."""
    row_id = parse_row_id(value.strip())
    return "" if row_id is None else str(row_id)


@bp.get("/bets")
@console_view("transactions.read")
def bets():
    args = request.args
    filters = {
        "player": player_filter(args)[0],
        "provider": args.get("provider", "").strip().lower()[:32],
        "status": args.get("status", "") if args.get("status") in ("open", "closed") else "",
        "outcome": args.get("outcome", "") if args.get("outcome") in ("win", "lose") else "",
        "currency": args.get("currency", "").strip().upper()[:8],
        "date_from": args.get("date_from", "") if _day(args.get("date_from")) else "",
        "date_to": args.get("date_to", "") if _day(args.get("date_to")) else "",
    }
    f = rounds.BetFilter(
        user_id=player_filter(args)[1],
        provider=filters["provider"] or None,
        status=filters["status"] or None,
        outcome=filters["outcome"] or None,
        currency=filters["currency"] or None,
        date_from=_day(filters["date_from"]),
        date_to=_day_after(filters["date_to"]),
    )
    listing = paged(
        lambda offset, limit: rounds.bets(f, offset=offset, limit=limit), filters=filters
    )
    return render_template(
        "console/play/bets.html",
        listing=listing,
        users=users_by_id(b["user_id"] for b in listing.items),
        summary=rounds.bet_summary(f),
        providers=games.list_providers(active_only=False),
    )


@bp.get("/callbacks")
@console_view("callbacks.read")
def callbacks():
    args = request.args
    filters = {
        "provider": args.get("provider", "").strip().lower()[:32],
        "action": args.get("action", "").strip()[:32],
        "verdict": args.get("verdict", "").strip()[:32],
        "player": player_filter(args)[0],
        "transaction_id": args.get("transaction_id", "").strip()[:100],
        "round_id": args.get("round_id", "").strip()[:100],
    }
    listing = paged(
        lambda offset, limit: callback_log.callback_log(
            provider=filters["provider"] or None,
            action=filters["action"] or None,
            verdict=filters["verdict"] or None,
            user_id=player_filter(args)[1],
            transaction_id=filters["transaction_id"] or None,
            round_id=filters["round_id"] or None,
            offset=offset,
            limit=limit,
        ),
        filters=filters,
    )
    return render_template(
        "console/play/callbacks.html",
        listing=listing,
        users=users_by_id(cb.user_id for cb in listing.items),
        providers=games.list_providers(active_only=False),
    )


@bp.route("/callbacks/<int:callback_id>/replay", methods=["GET", "POST"])
@console_view("callbacks.replay")
def callback_replay(callback_id: int):
    row = db.session.get(ProviderCallback, callback_id)
    if row is None:
        abort(404)
    form = ConfirmForm()

    def act(context: str):
        original, result = replay.replay(row.id, actor=current_user)
        db.session.expire_all()
        cb = db.session.get_one(ProviderCallback, original.id)
        return (
            "console/play/_callback_row.html",
            {"cb": cb, "users": users_by_id([cb.user_id])},
            replay_message(original.id, result),
            url_for("console.callbacks"),
        )

    dialog = {
        "title": f"Replay callback #{row.id}",
        "action_url": url_for("console.callback_replay", callback_id=row.id),
        "submit_label": "Replay",
        "danger": False,
        "description": f"{row.provider_code} {row.action or ''} {row.transaction_id or ''} "
        f"(first verdict: {row.verdict}). The request goes through the same callback service; "
        "idempotency means money moves at most once.",
    }
    return decisions.run(
        form,
        contexts={"row": f"#callback-row-{row.id}", "panel": f"#callback-row-{row.id}"},
        dialog=dialog,
        act=act,
    )


def replay_message(callback_id: int, result: Any) -> tuple[str, str]:
    """What the replay did, with the reason when it was refused (not only a code)."""
    if result.ok:
        note = " (already applied: answered with its first answer)" if result.duplicate else ""
        return f"Callback #{callback_id} replayed: ok{note}.", "success"
    reason = result.message or result.reason or "no reason given"
    code = (result.code or "error").replace("_", " ").lower()
    return f"Callback #{callback_id} replayed: refused ({code}): {reason}.", "warning"


GAME_SORTABLE = {
    "name": Game.name,
    "id": Game.id,
    "plays": Game.play_count,
    "created": Game.created_at,
}


@bp.get("/games")
@console_view("games.manage")
def games_list():
    args = request.args
    filters = {
        "q": args.get("q", "").strip()[:100],
        "provider": args.get("provider", "").strip().lower()[:32],
        "status": args.get("status", "") if args.get("status") in GAME_STATUSES else "",
        "featured": "1" if args.get("featured") == "1" else "",
    }
    query = select(Game).join(Provider, Provider.id == Game.provider_id)
    if filters["q"]:
        needle = f"%{filters['q'].lower()}%"
        query = query.where(
            or_(func.lower(Game.name).like(needle), func.lower(Game.external_id).like(needle))
        )
    if filters["provider"]:
        query = query.where(Provider.code == filters["provider"])
    if filters["status"]:
        query = query.where(Game.status == filters["status"])
    if filters["featured"]:
        query = query.where(Game.is_featured.is_(True))
    listing = paginate(
        query,
        sortable=GAME_SORTABLE,
        default_sort="name",
        default_direction="asc",
        filters=filters,
        tiebreak=Game.id,
    )
    return render_template(
        "console/play/games.html",
        listing=listing,
        statuses=GAME_STATUSES,
        providers=games.list_providers(active_only=False),
    )


def _toggled(render, fallback: str):
    if is_htmx():
        return render()
    return redirect(request.referrer if _same_console(request.referrer) else fallback)


def _same_console(url: str | None) -> bool:
    return url is not None and url.startswith(request.host_url.rstrip("/") + "/admin")


@bp.post("/games/<int:game_id>/toggle/<any(active, featured):field>")
@console_view("games.manage")
def game_toggle(game_id: int, field: str):
    game = db.session.get(Game, game_id)
    if game is None:
        abort(404)
    change: dict[str, Any]
    if field == "active":
        change = {"status": "inactive" if game.status == "active" else "active"}
    else:
        change = {"is_featured": not game.is_featured}
    try:
        game = games.update_game(game.id, change, actor=current_user)
    except AppError as exc:
        flash(exc.message, "error")
    else:
        if field == "active":
            state = f"status {game.status}"
        else:
            state = "featured" if game.is_featured else "not featured"
        flash(f"{game.name}: {state}.", "success")
    return _toggled(
        lambda: render_template("console/play/_game_row.html", game=game, swapped=True),
        url_for("console.games_list"),
    )


@bp.get("/providers")
@console_view("games.manage")
def providers():
    rows = games.list_providers(active_only=False)
    counts = dict(
        db.session.execute(
            select(Game.provider_id, func.count(Game.id)).group_by(Game.provider_id)
        ).all()
    )
    return render_template("console/play/providers.html", providers=rows, counts=counts)


@bp.post("/providers/<int:provider_id>/toggle")
@console_view("games.manage")
def provider_toggle(provider_id: int):
    provider = db.session.get(Provider, provider_id)
    if provider is None:
        abort(404)
    provider = games.update_provider(
        provider.id, {"active": not provider.active}, actor=current_user
    )
    flash(
        _("Provider %(name)s enabled.", name=provider.name)
        if provider.active
        else _("Provider %(name)s disabled.", name=provider.name),
        "success",
    )
    counts = {
        provider.id: db.session.scalar(
            select(func.count(Game.id)).where(Game.provider_id == provider.id)
        )
    }
    return _toggled(
        lambda: render_template(
            "console/play/_provider_row.html", provider=provider, counts=counts, swapped=True
        ),
        url_for("console.providers"),
    )
