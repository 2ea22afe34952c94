"""Lottery draws: ticket sales from the wallet, a provably fair draw, settlement once.

Invariants:
* A purchase locks the draw row (the total cap and the per-player cap are exact), passes the
  responsible-gaming bet checks, and debits the wallet once: a ``bet`` ledger transaction whose
  other leg is ``house:lottery`` (tickets count towards wager and loss limits like any stake).
  Cash only: bonus money does not buy tickets. A retried purchase is the API's business: its
  ``Idempotency-Key`` replays the first answer (``app.core.idempotency``).
* Fairness: at creation (before sales open) a 256-bit ``server_seed`` is drawn with ``secrets``
  and only ``sha256(server_seed)`` is published. After sales close the public value is fixed:
  ``sha256("<id1>,<id2>,...")`` of the sold ticket ids in ascending order. The winning index
  is ``HMAC-SHA256(server_seed, f"{public_value}:{i}")`` read as an integer, for i = 0, 1, ...,
  the first value below the largest multiple of n (no modulo bias), modulo n; the winner is
  the n-th ticket by id. The seed is then revealed; ``verify()`` recomputes all of it.
* The draw and its payout (``win``, key ``lottery:<id>:prize``) commit together, once;
  a cancelled draw refunds every ticket (``refund``, key ``lottery:ticket:<id>:refund``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import func, select

from app.core import audit, notifications
from app.core.base import utcnow
from app.core.db import atomic, lock_one
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor
from app.play import guard as play_guard
from app.prizes.models import LotteryDraw, LotteryTicket
from app.wallet import ledger as wallet

SOURCE = "lottery"
HOUSE = "house:lottery"
MAX_PER_PURCHASE = 100


# --------------------------------------------------------------------------- fairness


def seed_hash(server_seed: str) -> str:
    return hashlib.sha256(server_seed.encode()).hexdigest()


def public_value_of(ticket_ids: list[int]) -> str:
    return hashlib.sha256(",".join(str(i) for i in sorted(ticket_ids)).encode()).hexdigest()


def winning_index(server_seed: str, public_value: str, n: int) -> int:
    """Uniform index in [0, n) from the seed and the public value (rejection sampling)."""
    if n <= 0:
        raise ValueError("no tickets")
    space = 1 << 256
    limit = space - space % n
    i = 0
    while True:
        digest = hmac.new(
            server_seed.encode(), f"{public_value}:{i}".encode(), hashlib.sha256
        ).hexdigest()
        value = int(digest, 16)
        if value < limit:
            return value % n
        i += 1


# --------------------------------------------------------------------------- staff


def create(data: dict[str, Any], *, actor: Any) -> LotteryDraw:
    currency = normalize_currency(data["currency"])

    def minor(key: str, default: Any = None) -> int:
        value = data.get(key, default)
        try:
            return parse_minor(value, currency)
        except MoneyError as exc:
            raise ValidationError.field(key, str(exc)) from None

    prize_type = data.get("prize_type", "cash")
    draw = LotteryDraw(
        title=data["title"],
        description=data.get("description"),
        currency=currency,
        prize_type=prize_type,
        prize_amount=minor("prize_amount", 0),
        prize_description=data.get("prize_description"),
        ticket_price=minor("ticket_price"),
        max_tickets=data["max_tickets"],
        max_per_player=data.get("max_per_player") or data["max_tickets"],
        sales_open_at=data["sales_open_at"],
        sales_close_at=data["sales_close_at"],
        draw_at=data.get("draw_at") or data["sales_close_at"],
        created_by=getattr(actor, "id", None),
    )
    if draw.ticket_price <= 0:
        raise ValidationError.field("ticket_price", "Must be above zero")
    if prize_type == "cash" and draw.prize_amount <= 0:
        raise ValidationError.field("prize_amount", "A cash draw needs a prize amount")
    if prize_type == "item" and not draw.prize_description:
        raise ValidationError.field("prize_description", "Describe the prize")
    if draw.sales_close_at <= draw.sales_open_at:
        raise ValidationError.field("sales_close_at", "Must be after sales_open_at")
    if draw.draw_at < draw.sales_close_at:
        raise ValidationError.field("draw_at", "Must not be before sales_close_at")
    draw.server_seed = secrets.token_hex(32)
    draw.server_seed_hash = seed_hash(draw.server_seed)
    with atomic():
        db.session.add(draw)
        db.session.flush()
        audit.record(
            "lottery.create",
            actor=actor,
            target_type="lottery_draw",
            target_id=draw.id,
            after={"title": draw.title, "seed_hash": draw.server_seed_hash},
        )
    return draw


def cancel(draw_id: int, *, actor: Any, reason: str) -> LotteryDraw:
    """Cancel a draw that has not been drawn and refund every ticket (idempotent)."""
    with atomic():
        draw = _locked(draw_id)
        if draw.status == "drawn":
            raise Conflict("This draw has already been drawn")
        tickets = db.session.scalars(
            select(LotteryTicket)
            .where(LotteryTicket.draw_id == draw.id, LotteryTicket.status == "active")
            .order_by(LotteryTicket.id)
            .with_for_update()
        ).all()
        for ticket in tickets:
            posting = wallet.post(
                ticket.user_id,
                draw.currency,
                "refund",
                cash_delta=ticket.price,
                source=SOURCE,
                idempotency_key=f"lottery:ticket:{ticket.id}:refund",
                reference_type="lottery_ticket",
                reference_id=ticket.id,
                description=f"Refund: {draw.title} #{ticket.number}",
                counter_account=HOUSE,
            )
            ticket.status = "refunded"
            ticket.refund_transaction_id = posting.transaction_id
        if draw.status != "cancelled":
            draw.status = "cancelled"
            draw.cancelled_reason = reason
            audit.record(
                "lottery.cancel",
                actor=actor,
                target_type="lottery_draw",
                target_id=draw.id,
                after={"refunded_tickets": len(tickets)},
                reason=reason,
            )
        return draw


# --------------------------------------------------------------------------- players


def buy(draw_id: int, user: Any, count: int) -> tuple[LotteryDraw, list[LotteryTicket]]:
    """Buy ``count`` tickets; returns ``(draw, tickets)``."""
    if not 1 <= count <= MAX_PER_PURCHASE:
        raise ValidationError.field("count", f"Between 1 and {MAX_PER_PURCHASE}")
    with atomic():
        draw = _locked(draw_id)
        now = utcnow()
        if draw.status != "scheduled" or not draw.sales_open_at <= now < draw.sales_close_at:
            raise Conflict("Ticket sales for this draw are closed")
        if draw.tickets_sold + count > draw.max_tickets:
            raise Conflict(f"Only {draw.max_tickets - draw.tickets_sold} tickets left")
        mine = db.session.execute(
            select(func.count(LotteryTicket.id)).where(
                LotteryTicket.draw_id == draw.id,
                LotteryTicket.user_id == user.id,
                LotteryTicket.status == "active",
            )
        ).scalar_one()
        if mine + count > draw.max_per_player:
            raise Conflict(f"At most {draw.max_per_player} tickets per player")
        total = draw.ticket_price * count
        play_guard.check_bet_allowed(
            user.id, total, draw.currency, user.status, getattr(user, "status_until", None)
        )
        posting = wallet.post(
            user.id,
            draw.currency,
            "bet",
            cash_delta=-total,
            source=SOURCE,
            # Unique per sale: the draw row lock orders the sales, so ticket numbers never repeat.
            idempotency_key=f"lottery:{draw.id}:sale:{draw.tickets_sold + 1}",
            reference_type="lottery_draw",
            reference_id=draw.id,
            description=f"{count} ticket(s): {draw.title}",
            meta={"count": count},
            counter_account=HOUSE,
        )
        tickets = []
        for n in range(count):
            ticket = LotteryTicket(
                draw_id=draw.id,
                user_id=user.id,
                number=draw.tickets_sold + n + 1,
                price=draw.ticket_price,
                purchase_transaction_id=posting.transaction_id,
            )
            db.session.add(ticket)
            tickets.append(ticket)
        draw.tickets_sold += count
        db.session.flush()
        return draw, tickets


def tickets_of(user_id: int, draw_id: int | None = None) -> list[LotteryTicket]:
    q = select(LotteryTicket).where(LotteryTicket.user_id == user_id)
    if draw_id is not None:
        q = q.where(LotteryTicket.draw_id == draw_id)
    return list(db.session.scalars(q.order_by(LotteryTicket.id.desc()).limit(500)))


# --------------------------------------------------------------------------- draw


def run_draw(draw_id: int, *, actor: Any = None) -> LotteryDraw:
    """Draw the winner and pay the cash prize, once (a drawn draw is returned as it is).
    Run by staff (``actor``), the draw is audited in its transaction; the job runs it as the
    system, unaudited like every scheduled settlement."""
    with atomic():
        draw = _locked(draw_id)
        if draw.status != "scheduled":
            return draw
        if utcnow() < draw.draw_at:
            raise Conflict("The draw time has not come yet")
        _draw_locked(draw)
        if actor is not None:
            audit.record(
                "lottery.draw",
                actor=actor,
                target_type="lottery_draw",
                target_id=draw.id,
                before={"status": "scheduled"},
                after={
                    "status": draw.status,
                    "tickets": draw.tickets_sold,
                    "public_value": draw.public_value,
                    "winning_ticket_id": draw.winning_ticket_id,
                    "winner_user_id": draw.winner_user_id,
                },
            )
        return draw


def _draw_locked(draw: LotteryDraw) -> None:
    """The draw itself, on the locked scheduled row (the caller owns the transaction)."""
    ids = list(
        db.session.scalars(
            select(LotteryTicket.id)
            .where(LotteryTicket.draw_id == draw.id, LotteryTicket.status == "active")
            .order_by(LotteryTicket.id)
        )
    )
    draw.public_value = public_value_of(ids)
    draw.drawn_at = utcnow()
    draw.status = "drawn"
    if not ids:
        return
    ticket = db.session.get_one(  # one of the ids just read
        LotteryTicket, ids[winning_index(draw.server_seed, draw.public_value, len(ids))]
    )
    draw.winning_ticket_id = ticket.id
    draw.winner_user_id = ticket.user_id
    if draw.prize_type == "cash" and draw.prize_amount > 0:
        posting = wallet.post(
            ticket.user_id,
            draw.currency,
            "win",
            cash_delta=draw.prize_amount,
            source=SOURCE,
            idempotency_key=f"lottery:{draw.id}:prize",
            reference_type="lottery_draw",
            reference_id=draw.id,
            description=f"Lottery prize: {draw.title}",
            counter_account=HOUSE,
        )
        draw.prize_transaction_id = posting.transaction_id
    db.session.flush()
    notifications.notify(
        ticket.user_id,
        "lottery_win",
        draw.title,
        Msg("Your ticket #%(number)s won the draw", number=ticket.number),
        data={"draw_id": draw.id, "ticket_id": ticket.id},
        dedupe_key=f"lottery_win:{draw.id}",
    )


def draw_due() -> list[int]:
    ids = list(
        db.session.scalars(
            select(LotteryDraw.id).where(
                LotteryDraw.status == "scheduled", LotteryDraw.draw_at <= utcnow()
            )
        )
    )
    for draw_id in ids:
        run_draw(draw_id)
    return ids


def verify(draw_id: int) -> dict[str, Any]:
    """Recompute a drawn draw from its published data."""
    draw = get(draw_id)
    if draw.status != "drawn":
        raise Conflict("This draw has not been drawn yet")
    ids = list(
        db.session.scalars(
            select(LotteryTicket.id)
            .where(LotteryTicket.draw_id == draw.id, LotteryTicket.status == "active")
            .order_by(LotteryTicket.id)
        )
    )
    public_value = public_value_of(ids)
    index = winning_index(draw.server_seed, public_value, len(ids)) if ids else None
    recomputed = None if index is None else ids[index]
    return {
        "draw_id": draw.id,
        "server_seed": draw.server_seed,
        "server_seed_hash": draw.server_seed_hash,
        "seed_hash_matches": seed_hash(draw.server_seed) == draw.server_seed_hash,
        "ticket_ids": ids,
        "public_value": draw.public_value,
        "public_value_matches": public_value == draw.public_value,
        "winning_index": index,
        "winning_ticket_id": draw.winning_ticket_id,
        "recomputed_ticket_id": recomputed,
        "verified": seed_hash(draw.server_seed) == draw.server_seed_hash
        and public_value == draw.public_value
        and recomputed == draw.winning_ticket_id,
        "formula": "index = first HMAC-SHA256(server_seed, f'{public_value}:{i}') below "
        "2^256 - 2^256 % n, mod n; public_value = sha256(sorted ticket ids joined by ',')",
    }


# --------------------------------------------------------------------------- reads


def _locked(draw_id: int) -> LotteryDraw:
    draw = lock_one(LotteryDraw, LotteryDraw.id == draw_id)
    if draw is None:
        raise NotFound("Draw not found")
    return draw


def get(draw_id: int) -> LotteryDraw:
    draw = db.session.get(LotteryDraw, draw_id)
    if draw is None:
        raise NotFound("Draw not found")
    return draw


def listing(status: str | None = None) -> list[LotteryDraw]:
    q = select(LotteryDraw)
    if status:
        q = q.where(LotteryDraw.status == status)
    return list(db.session.scalars(q.order_by(LotteryDraw.draw_at.desc()).limit(200)))


def state(draw: LotteryDraw) -> str:
    if draw.status != "scheduled":
        return draw.status
    now = utcnow()
    if now < draw.sales_open_at:
        return "upcoming"
    return "on_sale" if now < draw.sales_close_at else "sales_closed"


def draw_json(draw: LotteryDraw) -> dict[str, Any]:
    drawn = draw.status == "drawn"
    winning_number = None
    if draw.winning_ticket_id:
        winning_number = db.session.scalar(
            select(LotteryTicket.number).where(LotteryTicket.id == draw.winning_ticket_id)
        )
    return {
        "id": draw.id,
        "title": draw.title,
        "description": draw.description,
        "currency": draw.currency,
        "prize_type": draw.prize_type,
        "prize_amount": format_minor(draw.prize_amount, draw.currency),
        "prize_description": draw.prize_description,
        "ticket_price": format_minor(draw.ticket_price, draw.currency),
        "max_tickets": draw.max_tickets,
        "max_per_player": draw.max_per_player,
        "tickets_sold": draw.tickets_sold,
        "sales_open_at": draw.sales_open_at.isoformat(),
        "sales_close_at": draw.sales_close_at.isoformat(),
        "draw_at": draw.draw_at.isoformat(),
        "state": state(draw),
        "server_seed_hash": draw.server_seed_hash,
        "server_seed": draw.server_seed if drawn else None,
        "public_value": draw.public_value,
        "winning_ticket_id": draw.winning_ticket_id,
        "winning_number": winning_number,
        "drawn_at": draw.drawn_at.isoformat() if draw.drawn_at else None,
    }


def ticket_json(ticket: LotteryTicket) -> dict[str, Any]:
    draw = db.session.get_one(LotteryDraw, ticket.draw_id)  # ticket.draw_id is a foreign key
    cur = draw.currency
    return {
        "id": ticket.id,
        "draw_id": ticket.draw_id,
        "number": ticket.number,
        "price": format_minor(ticket.price, cur),
        "currency": cur,
        "status": ticket.status,
        "won": draw.winning_ticket_id == ticket.id,
        "draw_state": state(draw),
        "purchased_at": ticket.created_at.isoformat(),
    }
