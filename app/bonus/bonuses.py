"""One player's bonus, as both promotions and free spins change it.

Invariants:
* Bonus money moves only through ``app.wallet.ledger`` (ledger ``bonus_convert`` /
  ``bonus_forfeit``), keyed ``<type>:<bonus id>:<key>`` so a retried step posts once.
* Callers hold the player's wallet lock (``wallet.lock``) before they change a bonus: the
  wallet row, then the bonus row (``locked``), the order every bonus path takes.
* ``bonus_event`` publishes after commit; ``notify`` de-duplicates per bonus and kind.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select

from app.bonus.models import BONUS_STATES, FreeSpinGrant, PlayerBonus, Promotion
from app.core import audit, events, notifications
from app.core.base import utcnow
from app.core.db import lock_existing, lock_one
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import format_minor
from app.play.models import Game
from app.wallet import ledger as wallet

SOURCE = "bonus"

#: The rows the bonus paths lock (the wallet row first, see the invariants above).
_Row = TypeVar("_Row", PlayerBonus, FreeSpinGrant, Promotion)


def locked(model: type[_Row], row_id: int) -> _Row | None:
    """Lock the row and refresh a copy already in the session (objects loaded before the
    lock may hold stale attributes)."""
    return lock_one(model, model.id == row_id, refresh=True)


def locked_existing(model: type[_Row], row_id: int) -> _Row:
    """``locked`` for a row that must exist (just read, or named by a foreign key)."""
    return lock_existing(model, model.id == row_id, refresh=True)


def move(bonus: PlayerBonus, type_: str, amount: int, key: str, *, cash: bool) -> int:
    posting = wallet.post(
        bonus.user_id,
        bonus.currency,
        type_,
        cash_delta=amount if cash else 0,
        bonus_delta=-amount,
        source=SOURCE,
        idempotency_key=f"{type_}:{bonus.id}:{key}",
        reference_type="player_bonus",
        reference_id=bonus.id,
        description="Bonus converted to cash" if cash else "Bonus forfeited",
    )
    return posting.transaction_id


def complete(bonus: PlayerBonus) -> None:
    """Wagering done: the bonus balance becomes cash up to the cap; the rest is forfeited."""
    w = wallet.lock(bonus.user_id, bonus.currency)
    balance = w.bonus_balance
    convert = balance if bonus.max_cashout_minor is None else min(balance, bonus.max_cashout_minor)
    refs = dict(bonus.ledger_refs or {})
    if convert:
        refs["convert"] = move(bonus, "bonus_convert", convert, "complete", cash=True)
    if balance - convert:
        refs["forfeit"] = move(bonus, "bonus_forfeit", balance - convert, "cap", cash=False)
    bonus.converted_minor += convert
    bonus.forfeited_minor += balance - convert
    bonus.ledger_refs = refs
    BONUS_STATES.move(bonus, "completed")
    bonus.ended_at, bonus.end_reason = utcnow(), "wagering completed"
    audit.record("bonus.convert", target_type="player_bonus", target_id=bonus.id,
                 after={"converted": format_minor(convert, bonus.currency),
                        "forfeited": format_minor(balance - convert, bonus.currency),
                        "currency": bonus.currency})  # fmt: skip
    notify_player(
        bonus,
        "bonus_converted",
        Msg(
            "Wagering complete: %(amount)s %(currency)s moved to your cash balance",
            amount=format_minor(convert, bonus.currency),
            currency=bonus.currency,
        ),
    )
    bonus_event(bonus, "completed")


def bonus_json(b: PlayerBonus) -> dict[str, Any]:
    cur = b.currency
    required, progress = b.wagering_required_minor, b.wagering_progress_minor
    return {
        "id": b.id,
        "promotion_id": b.promotion_id,
        "promotion_name": b.promotion.name if b.promotion else None,
        "status": b.status,
        "currency": cur,
        "amount": format_minor(b.amount_minor, cur),
        "wagering_required": format_minor(required, cur),
        "wagering_progress": format_minor(min(progress, required), cur),
        "wagering_percent": 100 if not required else min(100, progress * 100 // required),
        "max_bet": None if b.max_bet_minor is None else format_minor(b.max_bet_minor, cur),
        "max_cashout": None
        if b.max_cashout_minor is None
        else format_minor(b.max_cashout_minor, cur),
        "converted": format_minor(b.converted_minor, cur),
        "forfeited": format_minor(b.forfeited_minor, cur),
        "deposit": None if b.deposit_minor is None else format_minor(b.deposit_minor, cur),
        "claimed_at": b.claimed_at.isoformat() if b.claimed_at else None,
        "granted_at": b.granted_at.isoformat() if b.granted_at else None,
        "expires_at": b.expires_at.isoformat() if b.expires_at else None,
        "ended_at": b.ended_at.isoformat() if b.ended_at else None,
        "end_reason": b.end_reason,
        "free_spins": _free_spins_of(b),
    }


def _free_spins_of(b: PlayerBonus) -> dict[str, Any] | None:
    if b.promotion is None or b.promotion.type != "free_spins":
        return None
    row = grant_of_bonus(b.id)
    return None if row is None else grant_json(row)


def bonus_event(bonus: PlayerBonus, action: str) -> None:
    db.session.flush()
    events.publish(
        "promotion.update",
        {"action": action, "bonus": bonus_json(bonus)},
        room=events.user_room(bonus.user_id),
    )


def notify_player(bonus: PlayerBonus, kind: str, message: str | Msg) -> None:
    notifications.notify(
        bonus.user_id, kind, Msg("Bonus"), message, data={"bonus_id": bonus.id},
        dedupe_key=f"{kind}:{bonus.id}",
    )  # fmt: skip


def grant_json(row: FreeSpinGrant, game: Game | None = None) -> dict[str, Any]:
    game = game or db.session.get(Game, row.game_id)
    cur = row.currency
    return {
        "id": row.public_id,
        "bonus_id": row.bonus_id,
        "promotion_id": row.promotion_id,
        "game": {"id": game.id, "name": game.name} if game else None,
        "status": row.status,
        "spins_total": row.spins_total,
        "spins_used": row.spins_used,
        "spins_remaining": row.spins_total - row.spins_used if row.status == "active" else 0,
        "spin_value": format_minor(row.spin_value_minor, cur),
        "currency": cur,
        "won": format_minor(row.won_minor, cur),
        "wagering_multiplier": row.wagering_multiplier,
        "expires_at": row.expires_at.isoformat(),
    }


def grant_of_bonus(bonus_id: int) -> FreeSpinGrant | None:
    return db.session.scalar(select(FreeSpinGrant).where(FreeSpinGrant.bonus_id == bonus_id))
