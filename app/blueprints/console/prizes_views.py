"""Jackpots and lottery draws. Permission ``promotions.manage`` as ``/api/admin/jackpots``
and ``/api/admin/lottery``; the manual jackpot payout is Admin-only in the service
(``jackpots.may_pay_manually``). Edits and decisions go through ``app.prizes.jackpots`` /
``lottery`` with the admin API's own schemas; each service writes its audit row."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.blueprints.api.jackpots import PoolCreateSchema, PoolWriteSchema
from app.blueprints.api.lottery import DrawCreateSchema
from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import ConfirmForm, DecisionForm, JackpotPayoutForm
from app.blueprints.console.listing import users_by_id
from app.blueprints.console.schema_forms import saved_message, schema_form
from app.core.db import parse_row_id
from app.core.errors import ValidationError
from app.core.extensions import db
from app.core.money import format_minor
from app.identity.models import PLAYER, User
from app.prizes import jackpots, lottery
from app.prizes.models import LOTTERY_STATUSES, LotteryTicket

# --- jackpots --------------------------------------------------------------------------------


@bp.get("/jackpots")
@console_view("promotions.manage")
def jackpots_list():
    pools = jackpots.all_pools()
    wins = jackpots.recent_wins(20)
    return render_template(
        "console/engagement/jackpots.html",
        pools=[(p, jackpots.pool_json(p)) for p in pools],
        names={p.id: p.name for p in pools},
        wins=[(w, jackpots.win_json(w, staff=True)) for w in wins],
        users=users_by_id(w.user_id for w in wins),
    )


@bp.route("/jackpots/new", methods=["GET", "POST"])
@console_view("promotions.manage")
def jackpot_new():
    defaults = {"currency": current_app.config["DEFAULT_CURRENCY"], "status": "active"}
    form = schema_form(PoolCreateSchema, defaults)
    saved = form.submit(lambda args: jackpots.create_pool(args, actor=current_user))
    if saved:
        flash(_("Jackpot %(name)s created.", name=saved[0].name), "success")
        return redirect(url_for("console.jackpot_detail", pool_id=saved[0].id))
    return render_template(
        "console/engagement/form_page.html",
        form=form,
        title="New jackpot pool",
        action=url_for("console.jackpot_new"),
        submit_label="Create jackpot",
        back_url=url_for("console.jackpots_list"),
        back_label="Jackpots",
        intro="Contribution in percent of each eligible bet (two decimals at most). Tiers are "
        "pools sharing a group code. A must-drop pool draws its secret drop point now.",
    ), (400 if request.method == "POST" else 200)


def _pool_values(pool) -> dict:
    """The pool as ``PUT /api/admin/jackpots/<id>`` takes it (decimal strings)."""

    def money(minor):
        return None if minor is None else format_minor(minor, pool.currency)

    return {
        "name": pool.name,
        "status": pool.status,
        "tier": pool.tier,
        "group_code": pool.group_code,
        "seed_amount": money(pool.seed_amount),
        "contribution_percent": f"{pool.contribution_bps / 100:.2f}",
        "cap_amount": money(pool.cap_amount),
        "must_drop_by": money(pool.must_drop_by),
        "hit_odds": pool.hit_odds,
        "min_bet": money(pool.min_bet),
        "game_ids": pool.game_ids,
        "must_drop_within": pool.drop_window_seconds,
        "provider_id": pool.provider_id,
    }


@bp.get("/jackpots/<int:pool_id>")
@console_view("promotions.manage")
def jackpot_detail(pool_id: int):
    return render_template(
        "console/engagement/jackpot_detail.html", **_panel_values(jackpots.get_pool(pool_id))
    )


@bp.route("/jackpots/<int:pool_id>/edit", methods=["GET", "POST"])
@console_view("promotions.manage")
def jackpot_edit(pool_id: int):
    pool = jackpots.get_pool(pool_id)
    values = _pool_values(pool)
    form = schema_form(PoolWriteSchema, values)
    saved = form.submit(
        lambda args: jackpots.update_pool(pool.id, args, actor=current_user), initial=values
    )
    if saved:
        flash(saved_message(_("Jackpot"), *saved), "success" if saved[1] else "info")
        return redirect(url_for("console.jackpot_detail", pool_id=pool.id))
    return render_template(
        "console/engagement/form_page.html",
        form=form,
        title=f"Edit jackpot #{pool.id} ({pool.currency})",
        action=url_for("console.jackpot_edit", pool_id=pool.id),
        submit_label="Save changes",
        back_url=url_for("console.jackpot_detail", pool_id=pool.id),
        back_label=pool.name,
        intro="Amounts in " + pool.currency + ". A new seed or must-drop bound draws a new "
        "secret drop point (and publishes its commitment); other fields leave it as it is.",
    ), (400 if request.method == "POST" else 200)


def _player(text: str) -> User:
    """A player by username, e-mail or id (the payout form lets staff type any)."""
    text = text.strip()
    lowered = text.lower()
    named = [func.lower(User.username) == lowered, func.lower(User.email) == lowered]
    ident = parse_row_id(text)
    if ident is not None:
        named.append(User.id == ident)
    query = select(User).where(User.role_id == PLAYER, or_(*named))
    user = db.session.scalars(query).first()
    if user is None:
        raise ValidationError.field("player", "No player with this username, e-mail or id")
    return user


@bp.route("/jackpots/<int:pool_id>/payout", methods=["GET", "POST"])
@console_view("promotions.manage")
def jackpot_payout(pool_id: int):
    pool = jackpots.get_pool(pool_id)
    if not jackpots.may_pay_manually(current_user):
        abort(403)
    form = JackpotPayoutForm()

    def act(context: str):
        player = _player(form.player.data)
        win = jackpots.manual_payout(
            pool.id, player.id, actor=current_user, reason=form.reason.data
        )
        db.session.expire_all()
        amount = format_minor(win.amount or 0, win.currency)
        return (
            "console/engagement/_jackpot_panel.html",
            _panel_values(jackpots.get_pool(pool.id)),
            f"Paid {amount} {win.currency} from {pool.name} to {player.username}.",
            url_for("console.jackpot_detail", pool_id=pool.id),
        )

    info = jackpots.pool_json(pool)
    dialog = {
        "title": f"Pay {pool.name} manually",
        "action_url": url_for("console.jackpot_payout", pool_id=pool.id),
        "submit_label": "Pay the jackpot",
        "danger": True,
        "description": f"The whole current amount (now {info['amount']} {pool.currency}) is "
        "paid to the player's cash balance and the pool restarts at its seed. The payout is "
        "recorded in the audit log with your reason.",
    }
    return decisions.run(form, contexts={"panel": "#jackpot-panel"}, dialog=dialog, act=act)


def _panel_values(pool) -> dict:
    wins = jackpots.wins_of(pool.id, limit=50)
    return {
        "pool": pool,
        "info": jackpots.pool_json(pool),
        "wins": [(w, jackpots.win_json(w, staff=True)) for w in wins],
        "users": users_by_id([w.user_id for w in wins] + [w.actor_id for w in wins]),
        "may_pay": jackpots.may_pay_manually(current_user),
    }


# --- lottery ---------------------------------------------------------------------------------


@bp.get("/lottery")
@console_view("promotions.manage")
def lottery_list():
    status = request.args.get("status", "")
    status = status if status in LOTTERY_STATUSES else ""
    draws = lottery.listing(status or None)
    return render_template(
        "console/engagement/lottery.html",
        draws=[(d, lottery.draw_json(d)) for d in draws],
        users=users_by_id(d.winner_user_id for d in draws),
        status=status,
        statuses=LOTTERY_STATUSES,
    )


@bp.route("/lottery/new", methods=["GET", "POST"])
@console_view("promotions.manage")
def lottery_new():
    form = schema_form(DrawCreateSchema, {"currency": current_app.config["DEFAULT_CURRENCY"]})
    saved = form.submit(lambda args: lottery.create(args, actor=current_user))
    if saved:
        flash(
            _("Draw %(title)s created; its seed hash is published.", title=saved[0].title),
            "success",
        )
        return redirect(url_for("console.lottery_detail", draw_id=saved[0].id))
    return render_template(
        "console/engagement/form_page.html",
        form=form,
        title="New lottery draw",
        action=url_for("console.lottery_new"),
        submit_label="Create draw",
        back_url=url_for("console.lottery_list"),
        back_label="Lottery",
        intro="Times are UTC. The server seed is drawn now and only its SHA-256 hash is "
        "published; the draw time defaults to the end of sales.",
    ), (400 if request.method == "POST" else 200)


def _draw_values(draw) -> dict:
    counts = dict(
        db.session.execute(
            select(LotteryTicket.status, func.count(LotteryTicket.id))
            .where(LotteryTicket.draw_id == draw.id)
            .group_by(LotteryTicket.status)
        ).all()
    )
    winner = db.session.get(User, draw.winner_user_id) if draw.winner_user_id else None
    verification = lottery.verify(draw.id) if draw.status == "drawn" else None
    return {
        "draw": draw,
        "info": lottery.draw_json(draw),
        "counts": counts,
        "winner": winner,
        "verification": verification,
    }


@bp.get("/lottery/<int:draw_id>")
@console_view("promotions.manage")
def lottery_detail(draw_id: int):
    return render_template(
        "console/engagement/lottery_detail.html", **_draw_values(lottery.get(draw_id))
    )


@bp.route("/lottery/<int:draw_id>/cancel", methods=["GET", "POST"])
@console_view("promotions.manage")
def lottery_cancel(draw_id: int):
    draw = lottery.get(draw_id)
    form = DecisionForm()

    def act(context: str):
        cancelled = lottery.cancel(draw.id, actor=current_user, reason=form.reason.data.strip())
        db.session.expire_all()
        return (
            "console/engagement/_lottery_panel.html",
            _draw_values(lottery.get(cancelled.id)),
            f"Draw {cancelled.title} cancelled; every ticket was refunded.",
            url_for("console.lottery_detail", draw_id=draw.id),
        )

    dialog = {
        "title": f"Cancel draw #{draw.id}",
        "action_url": url_for("console.lottery_cancel", draw_id=draw.id),
        "submit_label": "Cancel the draw and refund",
        "danger": True,
        "description": f"{draw.tickets_sold} ticket(s) sold: each is refunded to its buyer's "
        "cash balance. A cancelled draw is never drawn.",
    }
    return decisions.run(form, contexts={"panel": "#lottery-panel"}, dialog=dialog, act=act)


@bp.route("/lottery/<int:draw_id>/draw", methods=["GET", "POST"])
@console_view("promotions.manage")
def lottery_run(draw_id: int):
    draw = lottery.get(draw_id)
    form = ConfirmForm()

    def act(context: str):
        drawn = lottery.run_draw(draw.id, actor=current_user)
        db.session.expire_all()
        values = _draw_values(lottery.get(drawn.id))
        number = values["info"]["winning_number"]
        message = (
            f"Draw {drawn.title} drawn: ticket #{number} wins."
            if number
            else f"Draw {drawn.title} closed without tickets."
        )
        return (
            "console/engagement/_lottery_panel.html",
            values,
            message,
            url_for("console.lottery_detail", draw_id=draw.id),
        )

    dialog = {
        "title": f"Run draw #{draw.id} now",
        "action_url": url_for("console.lottery_run", draw_id=draw.id),
        "submit_label": "Draw the winner",
        "danger": False,
        "description": "Fixes the public value from the sold tickets, picks the winner with the "
        "committed seed, pays a cash prize and reveals the seed. The scheduled job does the same "
        "at the draw time; running it twice draws once.",
    }
    return decisions.run(form, contexts={"panel": "#lottery-panel"}, dialog=dialog, act=act)
