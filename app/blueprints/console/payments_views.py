"""Withdrawals queue (with the player's risk context), deposits and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import abort, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.blueprints.console import decisions
from app.blueprints.console.core import bp, console_view
from app.blueprints.console.forms import ConfirmForm, DecisionForm
from app.blueprints.console.listing import paged, paginate, player_filter, users_by_id
from app.compliance import risk
from app.compliance.models import RiskFlag
from app.core.db import parse_row_id
from app.core.errors import NotFound
from app.core.extensions import db
from app.core.money import format_minor
from app.identity.models import User
from app.payments import records
from app.payments import withdrawals as withdrawal_rules
from app.payments.models import PaymentTransaction
from app.play import rounds
from app.wallet import ledger as wallet
from app.wallet.models import LEDGER_TYPES

PAYMENT_STATUSES = (
    "pending",
    "approved",
    "processing",
    "completed",
    "failed",
    "rejected",
    "cancelled",
    "expired",
)
SORTABLE = {
    "id": PaymentTransaction.id,
    "created": PaymentTransaction.created_at,
    "amount": PaymentTransaction.amount_minor,
}
CONTEXTS = {"row": "#withdrawal-row-{id}", "panel": "#withdrawal-panel"}


def _day(value: str | None) -> datetime | None:
    try:
        return datetime.strptime(value or "", "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _day_after(value: str | None) -> datetime | None:
    day = _day(value)
    return None if day is None else day + timedelta(days=1)


def _payment_filters(default_status: str) -> dict[str, str]:
    args = request.args
    status = args.get("status", default_status)
    return {
        "status": status if status in (*PAYMENT_STATUSES, "all") else default_status,
        "currency": args.get("currency", "").strip().upper()[:8],
        "q": args.get("q", "").strip()[:100],
        "date_from": args.get("date_from", "") if _day(args.get("date_from")) else "",
        "date_to": args.get("date_to", "") if _day(args.get("date_to")) else "",
    }


def _payment_query(type_: str, filters: dict[str, str]):
    query = select(PaymentTransaction).where(PaymentTransaction.type == type_)
    if filters["status"] != "all":
        query = query.where(PaymentTransaction.status == filters["status"])
    if filters["currency"]:
        query = query.where(PaymentTransaction.currency == filters["currency"])
    if filters["q"]:
        q = filters["q"]
        player_ids = select(User.id).where(func.lower(User.username) == q.lower())
        conditions = [PaymentTransaction.public_id == q, PaymentTransaction.user_id.in_(player_ids)]
        row_id = parse_row_id(q)
        if row_id is not None:
            conditions += [PaymentTransaction.user_id == row_id, PaymentTransaction.id == row_id]
        query = query.where(or_(*conditions))
    if filters["date_from"]:
        query = query.where(PaymentTransaction.created_at >= _day(filters["date_from"]))
    if filters["date_to"]:
        query = query.where(PaymentTransaction.created_at < _day_after(filters["date_to"]))
    return query


def _open_flags(user_ids) -> dict[int, int]:
    ids = set(user_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(RiskFlag.user_id, func.count(RiskFlag.id))
        .where(RiskFlag.user_id.in_(ids), RiskFlag.status == "open")
        .group_by(RiskFlag.user_id)
    ).all()
    # RiskFlag.user_id is nullable, but the IN filter above only matches set ones.
    return {user_id: int(n) for user_id, n in rows if user_id is not None}


def _summary(filters: dict[str, str], type_: str):
    """Counts and sums per status and currency for the whole filter (the service's figures)."""
    _rows, _total, summary = records.list_payments(
        type_,
        status=None if filters["status"] == "all" else filters["status"],
        currency=filters["currency"] or None,
        date_from=_day(filters["date_from"]),
        date_to=_day_after(filters["date_to"]),
        limit=1,
    )
    return summary


@bp.get("/withdrawals")
@console_view("withdrawals.read")
def withdrawals():
    filters = _payment_filters("pending")
    listing = paginate(
        _payment_query("withdrawal", filters),
        sortable=SORTABLE,
        # The queue is worked oldest first; history reads newest first.
        default_sort="created",
        default_direction="asc" if filters["status"] == "pending" else "desc",
        filters=filters,
        tiebreak=PaymentTransaction.id,
    )
    user_ids = [t.user_id for t in listing.items]
    approvers = [a.approver_id for t in listing.items for a in t.approvals]
    return render_template(
        "console/payments/withdrawals.html",
        listing=listing,
        users=users_by_id(user_ids + approvers),
        flags=_open_flags(user_ids),
        statuses=(*PAYMENT_STATUSES, "all"),
        pending_count=db.session.scalar(
            select(func.count(PaymentTransaction.id)).where(
                PaymentTransaction.type == "withdrawal", PaymentTransaction.status == "pending"
            )
        ),
    )


def _withdrawal_or_404(payment_id: int) -> PaymentTransaction:
    try:
        txn = records.get_payment_by_id(payment_id)
    except NotFound:
        abort(404)
    if txn.type != "withdrawal":
        abort(404)
    return txn


@bp.get("/withdrawals/<int:payment_id>")
@console_view("withdrawals.read")
def withdrawal_detail(payment_id: int):
    txn = _withdrawal_or_404(payment_id)
    player = db.session.get_one(User, txn.user_id)  # txn.user_id is a foreign key
    deposits, deposit_count, deposit_summary = records.list_payments(
        "deposit", user_id=player.id, limit=5
    )
    withdrawals_before, _n, withdrawal_summary = records.list_payments(
        "withdrawal", user_id=player.id, limit=6
    )
    bets, bet_count = rounds.bets(rounds.BetFilter(user_id=player.id), offset=0, limit=10)
    risk_flags: list[RiskFlag] = []
    if current_user.can("risk.read"):
        risk_flags, _ = risk.list_flags(user_id=player.id, limit=10)
    return render_template(
        "console/payments/withdrawal_detail.html",
        txn=txn,
        player=player,
        users={**users_by_id([a.approver_id for a in txn.approvals]), player.id: player},
        flags=_open_flags([player.id]),
        risk_flags=risk_flags,
        deposits=deposits,
        deposit_count=deposit_count,
        deposit_summary=deposit_summary,
        other_withdrawals=[w for w in withdrawals_before if w.id != txn.id][:5],
        withdrawal_summary=withdrawal_summary,
        bets=bets,
        bet_count=bet_count,
        bet_summary=rounds.bet_summary(rounds.BetFilter(user_id=player.id)),
        balances=wallet.balances(player.id),
    )


@bp.route("/withdrawals/<int:payment_id>/<any(approve, reject):action>", methods=["GET", "POST"])
@console_view("withdrawals.approve")
def withdrawal_decide(payment_id: int, action: str):
    txn = _withdrawal_or_404(payment_id)
    player = db.session.get_one(User, txn.user_id)  # txn.user_id is a foreign key
    form = ConfirmForm() if action == "approve" else DecisionForm()

    def act(context: str):
        if action == "approve":
            done = withdrawal_rules.approve_withdrawal(txn.id, current_user)
        else:
            done = withdrawal_rules.reject_withdrawal(txn.id, current_user, form.reason.data)
        db.session.expire_all()
        fresh = records.get_payment_by_id(done.id)
        approvers = users_by_id([a.approver_id for a in fresh.approvals])
        if action == "reject":
            message = f"Withdrawal {fresh.public_id} rejected; the funds are back with the player."
        elif fresh.status == "pending":
            message = (
                f"Withdrawal {fresh.public_id}: your approval is recorded; a different "
                "approver must confirm it."
            )
        else:
            message = f"Withdrawal {fresh.public_id} approved; the payout is on its way."
        fragment = "_withdrawal_row.html" if context == "row" else "_withdrawal_panel.html"
        values = {
            "txn": fresh,
            "users": {**approvers, player.id: player},
            "flags": _open_flags([player.id]),
        }
        return (
            f"console/payments/{fragment}",
            values,
            message,
            url_for("console.withdrawal_detail", payment_id=fresh.id),
        )

    needed = withdrawal_rules.required_approvals(txn)
    amount = f"{format_minor(txn.amount_minor, txn.currency)} {txn.currency}"
    if action == "approve":
        description = f"Pay {amount} to {player.username} through {txn.gateway.name}. " + (
            f"Amounts of this size need {needed} different approvers ({len(txn.approvals)} so far)."
            if needed > 1
            else "One approval sends it to the gateway."
        )
    else:
        description = f"The {amount} held for {player.username} goes back to their balance."
    dialog = {
        "title": f"{action.capitalize()} withdrawal {txn.public_id}",
        "action_url": url_for("console.withdrawal_decide", payment_id=txn.id, action=action),
        "submit_label": action.capitalize(),
        "danger": action == "reject",
        "description": description,
    }
    contexts = {k: v.format(id=txn.id) for k, v in CONTEXTS.items()}
    return decisions.run(form, contexts=contexts, dialog=dialog, act=act)


@bp.get("/deposits")
@console_view("withdrawals.read")
def deposits():
    filters = _payment_filters("all")
    listing = paginate(
        _payment_query("deposit", filters),
        sortable=SORTABLE,
        default_sort="created",
        filters=filters,
        tiebreak=PaymentTransaction.id,
    )
    return render_template(
        "console/payments/deposits.html",
        listing=listing,
        users=users_by_id(t.user_id for t in listing.items),
        statuses=(*PAYMENT_STATUSES, "all"),
        summary=_summary(filters, "deposit"),
    )


@bp.get("/transactions")
@console_view("transactions.read")
def transactions():
    args = request.args
    filters = {
        "type": args.get("type", "") if args.get("type") in LEDGER_TYPES else "",
        "currency": args.get("currency", "").strip().upper()[:8],
        "player": player_filter(args)[0],
        "source": args.get("source", "").strip()[:64],
        "date_from": args.get("date_from", "") if _day(args.get("date_from")) else "",
        "date_to": args.get("date_to", "") if _day(args.get("date_to")) else "",
    }
    f = wallet.LedgerFilter(
        user_id=player_filter(args)[1],
        types=[filters["type"]] if filters["type"] else None,
        currency=filters["currency"] or None,
        source=filters["source"] or None,
        date_from=_day(filters["date_from"]),
        date_to=_day_after(filters["date_to"]),
    )
    listing = paged(
        lambda offset, limit: wallet.transactions(f, offset=offset, limit=limit), filters=filters
    )
    return render_template(
        "console/payments/transactions.html",
        listing=listing,
        users=users_by_id(t.user_id for t in listing.items),
        types=LEDGER_TYPES,
        summary=wallet.transaction_summary(f),
    )


@bp.context_processor
def _payment_helpers() -> dict:
    return {"required_approvals": withdrawal_rules.required_approvals}
