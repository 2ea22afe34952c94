"""Players: search, profile, and account decisions through the shared modal form."""

from __future__ import annotations

from collections.abc import Sequence

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view, is_htmx
from app.blueprints.console.forms import (
    AdjustBalanceForm,
    PlayerActionForm,
    SuspendForm,
    without_grouping,
)
from app.blueprints.console.listing import paginate
from app.compliance import responsible_gaming as rg
from app.compliance.models import KycSubmission
from app.core.db import parse_row_id
from app.core.errors import AppError, ValidationError
from app.core.extensions import db
from app.core.models import AuditLog
from app.core.money import format_minor, parse_minor
from app.identity import accounts as identity
from app.identity import addresses, closure, phones, player_admin
from app.identity.models import PLAYER, USER_STATUSES, User
from app.play import rounds
from app.wallet import ledger as wallet

SORTABLE = {
    "id": User.id,
    "username": User.username,
    "email": User.email,
    "status": User.status,
    "country": User.country,
    "created": User.created_at,
    "last_login": User.last_login_at,
}

#: Where a decision's result is swapped back: the list row or the profile's status panel.
CONTEXTS = {"row": "#player-row-{id}", "panel": "#player-panel"}


def _player_or_404(player_id: int) -> User:
    user = db.session.get(User, player_id)
    if user is None or user.role_id != PLAYER:
        abort(404)
    return user


@bp.get("/players/suggest")
@console_view("players.read")
def player_suggest():
    """Up to 8 players whose username or e-mail starts with the typed text (the picker's
    datalist options). A bare number also offers the player with that id."""
    text = (request.args.get("player") or request.args.get("q") or "").strip()[:100]
    found: list[User] = []
    if len(text) >= 2 or parse_row_id(text) is not None:
        lowered = text.lower()
        query = (
            select(User)
            .where(User.role_id == PLAYER)
            .where(
                or_(
                    func.lower(User.username).startswith(lowered, autoescape=True),
                    func.lower(User.email).startswith(lowered, autoescape=True),
                    User.id == (parse_row_id(text) or 0),
                )
            )
            .order_by(User.username)
            .limit(8)
        )
        found = list(db.session.scalars(query))
    return render_template("console/players/_suggest.html", players=found)


@bp.get("/players")
@console_view("players.read")
def players():
    args = request.args
    filters = {
        "q": args.get("q", "").strip()[:100],
        "status": args.get("status", "") if args.get("status") in USER_STATUSES else "",
        "country": args.get("country", "").strip().upper()[:2],
    }
    query = select(User).where(User.role_id == PLAYER)
    if filters["q"]:
        needle = f"%{filters['q'].lower()}%"
        conditions = [func.lower(User.username).like(needle), func.lower(User.email).like(needle)]
        row_id = parse_row_id(filters["q"])
        if row_id is not None:
            conditions.append(User.id == row_id)
        query = query.where(or_(*conditions))
    if filters["status"]:
        query = query.where(User.status == filters["status"])
    if filters["country"]:
        query = query.where(User.country == filters["country"])
    listing = paginate(
        query, sortable=SORTABLE, default_sort="created", filters=filters, tiebreak=User.id
    )
    return render_template("console/players/list.html", listing=listing, statuses=USER_STATUSES)


@bp.get("/players/<int:player_id>")
@console_view("players.read")
def player_detail(player_id: int):
    player = _player_or_404(player_id)
    history: Sequence[AuditLog] = []
    if current_user.can("audit.read"):
        history = db.session.scalars(
            select(AuditLog)
            .where(AuditLog.target_type == "user", AuditLog.target_id == str(player.id))
            .order_by(AuditLog.id.desc())
            .limit(20)
        ).all()
    return render_template(
        "console/players/detail.html",
        player=player,
        history=history,
        **_money_context(player),
        **_profile_context(player),
    )


def _money_context(player: User) -> dict:
    return {"wallets": wallet.balances(player.id)}


def _profile_context(player: User) -> dict:
    """Ledger, bets, limits, KYC and sign-ins, each read through its own service."""
    context: dict = {"ledger": [], "bets": [], "bet_summary": {}}
    if current_user.can("transactions.read"):
        context["ledger"], context["ledger_total"] = wallet.transactions(
            wallet.LedgerFilter(user_id=player.id), offset=0, limit=10
        )
        bet_filter = rounds.BetFilter(user_id=player.id)
        context["bets"], context["bets_total"] = rounds.bets(bet_filter, offset=0, limit=10)
        context["bet_summary"] = rounds.bet_summary(bet_filter)
    context["limits"] = rg.limits_of(player.id)
    context["exclusion"] = rg.active_exclusion(player.id)
    context["kyc_submissions"] = db.session.scalars(
        select(KycSubmission)
        .where(KycSubmission.user_id == player.id)
        .order_by(KycSubmission.id.desc())
        .limit(5)
    ).all()
    context["logins"], context["logins_total"] = identity.login_history(player.id, page=1, limit=10)
    context["phones"] = phones.list_of(player.id)
    context["addresses"] = addresses.addresses_of(player.id)
    context["rg_prompt"] = rg.deposit_limit_prompt(player.id)
    return context


@bp.route("/players/<int:player_id>/adjust-balance", methods=["GET", "POST"])
@console_view("balances.adjust")
def player_adjust(player_id: int):
    """A manual credit or debit through ``wallet.adjust`` (audited there), reason required."""
    player = _player_or_404(player_id)
    form = AdjustBalanceForm()
    currencies = sorted({w.currency for w in wallet.balances(player.id)} | {player.currency})
    form.currency.choices = [(c, c) for c in currencies]
    if request.method == "GET":
        form.currency.data = player.currency

    def act(context: str):
        try:
            amount = parse_minor(
                without_grouping(form.amount.data), form.currency.data, allow_negative=True
            )
        except ValueError as exc:
            raise ValidationError.field("amount", str(exc)) from None
        posting = wallet.adjust(
            player.id,
            form.currency.data,
            amount,
            reason=form.reason.data,
            balance_type=form.balance_type.data,
            actor=current_user,
        )
        verb = "Credited" if amount > 0 else "Debited"
        shown = format_minor(abs(amount), posting.currency)
        return (
            "console/players/_wallets.html",
            {"player": player, **_money_context(player)},
            f"{verb} {shown} {posting.currency} ({form.balance_type.data}) for {player.username}.",
            url_for("console.player_detail", player_id=player.id),
        )

    dialog = {
        "title": f"Adjust balance of {player.username}",
        "action_url": url_for("console.player_adjust", player_id=player.id),
        "submit_label": "Post adjustment",
        "danger": False,
        "description": "The movement is written to the ledger as an adjustment with your "
        "name and reason. A debit cannot take the balance below zero.",
    }
    return decisions.run(form, contexts={"panel": "#player-wallets"}, dialog=dialog, act=act)


@bp.route(
    "/players/<int:player_id>/<any(ban, suspend, reactivate, 'force-logout', reopen):action>",
    methods=["GET", "POST"],
)
@console_view("players.manage")
def player_action(player_id: int, action: str):
    service, label, permission = player_admin.ACTIONS[action]
    if not current_user.can(permission):
        abort(403)
    player = _player_or_404(player_id)
    form = SuspendForm() if action == "suspend" else PlayerActionForm()
    if request.method == "GET":
        form.context.data = request.args.get("context", "panel")
    context = form.context.data if form.context.data in CONTEXTS else "panel"
    form.context.data = context
    error = None
    if form.validate_on_submit():
        kwargs = {"actor": current_user, "reason": form.reason.data}
        if action == "suspend":
            kwargs["duration"] = form.duration.data
        try:
            player = service(player.id, **kwargs)
        except AppError as exc:
            error = exc.message
        else:
            flash(f"{label}: {player.username} done.", "success")
            if not is_htmx():
                return redirect(url_for("console.player_detail", player_id=player.id))
            fragment = "_row.html" if context == "row" else "_panel.html"
            return render_template(f"console/players/{fragment}", player=player, swapped=True)
    dialog = {
        "title": f"{label} {player.username}",
        "action_url": url_for("console.player_action", player_id=player.id, action=action),
        "target": CONTEXTS[context].format(id=player.id),
        "submit_label": label,
        "danger": action in ("ban", "suspend", "force-logout"),
        "description": _describe(action, player),
        "error": error,
    }
    status = 200 if request.method == "GET" else (409 if error else 400)
    if is_htmx():
        # Re-render the form inside the open modal rather than in the row or panel.
        headers = {"HX-Retarget": "#modal-root", "HX-Reswap": "innerHTML"}
        html = render_template("console/components/modal_form.html", form=form, dialog=dialog)
        return html, 200, headers
    return render_template("console/modal_page.html", form=form, dialog=dialog), status


def _describe(action: str, player: User) -> str:
    return {
        "ban": "The account is closed to play and every session is signed out at once. "
        "Reactivating it later is possible.",
        "suspend": "The player cannot sign in or play until the suspension ends; every "
        "session is signed out at once.",
        "reactivate": f"The account goes from {player.status} back to active.",
        "force-logout": "Every token and session of this player stops working now. "
        "The account status does not change.",
        "reopen": "The player closed this account; it goes back to active and the player can "
        "sign in again. Refused while the player is self-excluded.",
    }[action]


@bp.context_processor
def _player_helpers() -> dict:
    return {
        "player_actions": player_admin.available_actions,
        "action_label": lambda name: player_admin.ACTIONS[name][1],
        "closure_reopenable_at": closure.reopenable_at,
    }
