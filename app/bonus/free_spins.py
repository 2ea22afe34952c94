"""Free spins: a ``free_spins`` promotion grants N free rounds on one game; the provider plays
them and settles them through the ordinary seamless-wallet callbacks.

How a free round moves through the money path:

1. Claim (``promotions.claim``): a ``PlayerBonus`` (active, amount 0) and a ``FreeSpinGrant``
   (count, game, stake per spin, expiry) are written, and the provider is told through its
   free-rounds adapter (``FreeRoundsAdapter``: ``create`` / ``cancel``) or, for an aggregator,
   through its API after commit (below). Only those providers can carry a free-spins promotion
   (the built-in JxOriginals studio; SoftSwiss- and Hub88-protocol providers with an ``api_url``).
2. Bet: the provider's ``bet`` callback names the grant (``free_round_id``) with ``amount`` 0 —
   the player's stake is never taken. Under the player's wallet lock one spin is consumed by a
   conditional UPDATE (``spins_used < spins_total``, status active, not expired): two racing
   bets can never use the same last spin. The round is recorded as a ``FreeSpinRound``.
3. Win: a win on a free round is operator-funded bonus money, not a game win: ledger
   ``bonus_grant`` (counter account ``house:bonus``, source ``provider:<code>``, idempotency key
   the provider's transaction id) into the bonus balance; the bonus amount grows and so does
   its wagering requirement (win x the promotion's multiplier). With multiplier 0 the win is
   converted at once (``bonus_convert``, within ``max_cashout``; the excess is forfeited):
   straight to cash. ``sum(ledger) == balance`` holds as for every movement.
4. Rollback/refund of a free bet gives the spin back; a win on a rolled-back free round is
   refused (``ROUND_CLOSED``). A rollback of a free round's *win* (``win_reversed``) undoes it
   under the contract while the contract is active and still holds that money: the bonus
   amount, its wagering requirement, the grant's and the round's winnings shrink with the
   bonus balance. Once the win is cash (no wagering), forfeited or converted (contract
   ended) the rollback is refused and flagged for staff; another bonus's money is never
   taken.
5. While spins are left, real-money bets do not advance the bonus's wagering. When every spin
   is settled (or the spins expire, job ``expire_bonuses``) the grant ends and the bonus is a
   normal wagering contract over the winnings (or completes at once: nothing won, or no
   wagering). Ending the bonus (player forfeit, withdrawal forfeit, bonus expiry) forfeits
   the spins left.

Free rounds through an aggregator (a SoftSwiss- or Hub88-protocol provider with an
``api_url``, ``app.play.aggregator_api``): the claim writes the grant with ``remote_status``
``pending`` and, once committed, issues it through the aggregator's API with the grant's
``public_id`` as the issue id, where the player does not wait for it (``_send_later``: an RQ
job when a worker runs them, else once the claim's answer has gone out; at once outside a
request). Its answer makes the grant ``issued`` (Hub88's ``reward_uuid``
goes to ``provider_ref``) or ``failed`` (a refusal); no answer leaves it ``pending`` and the job
``issue_free_rounds`` (or ``flask jackpotx providers free-rounds-retry``) sends the same issue
id again: the grant is never lost and the aggregator sees one issue. Its wins come back through
the wallet callbacks: Hub88 free bets name the reward (``consume`` finds the grant by
``provider_ref``), SoftSwiss reports the grant's total once (``settle_grant``).

Lock order (as in ``promotions``): wallet row, promotion row, bonus row, grant row.
"""

from __future__ import annotations

import importlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from flask import (
    Flask,
    Response,
    after_this_request,
    current_app,
    has_app_context,
    has_request_context,
)
from sqlalchemy import func, or_, select, update

from app.bonus import bonuses
from app.bonus.models import BONUS_STATES, FreeSpinGrant, FreeSpinRound, PlayerBonus, Promotion
from app.compliance import risk
from app.compliance.models import RiskFlag
from app.core import audit, queues
from app.core.base import utcnow
from app.core.db import atomic, on_commit
from app.core.errors import InsufficientBalance
from app.core.extensions import db
from app.core.money import format_minor
from app.play import aggregator_api
from app.play.models import Game, Provider
from app.play.seams import FreeRoundRefused
from app.wallet import ledger as wallet

log = logging.getLogger(__name__)

#: An expired grant's free round that the provider has not settled after this long is closed.
ABANDONED_AFTER = timedelta(hours=1)

# --- the provider seam -----------------------------------------------------------------------


@dataclass(frozen=True)
class FreeRoundsOffer:
    """What a provider needs to let the player play the free rounds."""

    grant_id: str
    player_id: int
    game_external_id: str
    currency: str
    spin_value_minor: int
    spins: int
    expires_at: datetime


class FreeRoundsAdapter(Protocol):
    """A provider's free-rounds API. ``create`` runs in the claim's transaction and answers
    the provider's reference of the grant; ``cancel`` withdraws what is left of it. A remote
    provider's adapter must be idempotent on ``grant_id`` (the claim may be retried)."""

    def create(self, offer: FreeRoundsOffer) -> str | None: ...

    def cancel(self, grant_id: str) -> None: ...


#: provider code -> "module:attribute" of its adapter class (imported when first used).
ADAPTERS: dict[str, str] = {
    "jxoriginals": "app.originals.studio:StudioFreeRounds",
}


def adapter_for(provider_code: str) -> FreeRoundsAdapter | None:
    target = ADAPTERS.get(provider_code)
    if target is None:
        return None
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)()


def supports(game_id: int | None) -> tuple[Game, Provider] | None:
    """The game and its provider when that provider can carry free rounds."""
    if game_id is None:
        return None
    row = db.session.execute(
        select(Game, Provider)
        .join(Provider, Provider.id == Game.provider_id)
        .where(Game.id == game_id)
    ).one_or_none()
    if row is None:
        return None
    if row[1].code not in ADAPTERS and aggregator_api.client_for(row[1]) is None:
        return None
    return row[0], row[1]


# --- claim -----------------------------------------------------------------------------------


def grant(bonus: PlayerBonus, p: Promotion) -> FreeSpinGrant:
    """Start a claimed free-spins bonus (claim transaction; wallet and promotion locked)."""
    found = supports(p.free_spins_game_id)
    if found is None:
        raise ValueError("free-spins promotion on a game without a free-rounds adapter")
    game, provider = found
    now = utcnow()
    bonus.granted_at = now
    bonus.expires_at = now + timedelta(days=p.bonus_valid_days)
    row = FreeSpinGrant(
        public_id=f"fsg_{secrets.token_hex(12)}",
        bonus_id=bonus.id,
        promotion_id=p.id,
        user_id=bonus.user_id,
        provider_id=provider.id,
        game_id=game.id,
        currency=bonus.currency,
        spin_value_minor=p.free_spin_value_minor,
        spins_total=p.free_spins_count,
        spins_used=0,
        won_minor=0,
        wagering_multiplier=p.wagering_multiplier,
        status="active",
        expires_at=min(now + timedelta(days=p.free_spins_valid_days), bonus.expires_at),
    )
    db.session.add(row)
    db.session.flush()
    adapter = adapter_for(provider.code)
    if adapter is not None:
        row.provider_ref = adapter.create(
            FreeRoundsOffer(
                grant_id=row.public_id,
                player_id=bonus.user_id,
                game_external_id=game.external_id,
                currency=row.currency,
                spin_value_minor=row.spin_value_minor,
                spins=row.spins_total,
                expires_at=row.expires_at,
            )
        )
    else:
        # Through the aggregator's API, once this claim has committed (never an HTTP call
        # inside the transaction) and not in the player's wait; until it answers the grant is
        # pending.
        row.remote_status = "pending"
        _send_later("issue_free_round", issue_remote, row.id)
    bonus.ledger_refs = {**(bonus.ledger_refs or {}), "free_spin_grant": row.public_id}
    audit.record(
        "bonus.free_spins_grant",
        target_type="player_bonus",
        target_id=bonus.id,
        after={
            "promotion": p.id,
            "grant": row.public_id,
            "spins": row.spins_total,
            "game_id": game.id,
            "spin_value": format_minor(row.spin_value_minor, row.currency),
            "currency": row.currency,
            "expires_at": row.expires_at.isoformat(),
        },
    )
    return row


# --- callbacks (the caller holds the player's wallet lock) -----------------------------------


def consume(
    *,
    provider_id: int,
    user_id: int,
    game_id: int | None,
    currency: str,
    free_round_id: str,
    round_ext: str,
    transaction_id: str,
) -> FreeSpinGrant:
    """Use one spin of the grant for this bet (wallet locked by the caller)."""
    row = db.session.scalar(
        select(FreeSpinGrant)
        .where(
            or_(
                FreeSpinGrant.public_id == free_round_id,
                # An aggregator's own reference of the grant (Hub88's ``reward_uuid``).
                (FreeSpinGrant.provider_id == provider_id)
                & (FreeSpinGrant.provider_ref == free_round_id),
            )
        )
        .order_by(FreeSpinGrant.id)
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None or row.user_id != user_id or row.provider_id != provider_id:
        raise FreeRoundRefused("VALIDATION_ERROR", "Unknown free-round grant for this player")
    if row.game_id != game_id:
        raise FreeRoundRefused("GAME_NOT_FOUND", "These free rounds are for another game")
    if row.currency != currency:
        raise FreeRoundRefused("VALIDATION_ERROR", f"These free rounds are in {row.currency}")
    if db.session.scalar(
        select(FreeSpinRound.id).where(
            FreeSpinRound.provider_id == provider_id,
            FreeSpinRound.external_round_id == round_ext,
        )
    ):
        raise FreeRoundRefused("ROUND_CLOSED", "A free round takes one bet")
    now = utcnow()
    used = db.session.execute(
        update(FreeSpinGrant)
        .where(
            FreeSpinGrant.id == row.id,
            FreeSpinGrant.status == "active",
            FreeSpinGrant.spins_used < FreeSpinGrant.spins_total,
            FreeSpinGrant.expires_at > now,
        )
        .values(spins_used=FreeSpinGrant.spins_used + 1, updated_at=now)
        .returning(FreeSpinGrant.spins_used)
    ).scalar_one_or_none()
    if used is None:
        why = "have expired" if row.expires_at <= now else "are used up or withdrawn"
        raise FreeRoundRefused("LIMIT_EXCEEDED", f"These free rounds {why}")
    db.session.add(
        FreeSpinRound(
            grant_id=row.id,
            provider_id=provider_id,
            external_round_id=round_ext,
            user_id=user_id,
            bet_transaction_id=transaction_id,
            status="played",
            win_minor=0,
        )
    )
    db.session.refresh(row)
    return row


def free_round(provider_id: int, round_ext: str) -> FreeSpinRound | None:
    return db.session.scalar(
        select(FreeSpinRound)
        .where(
            FreeSpinRound.provider_id == provider_id,
            FreeSpinRound.external_round_id == round_ext,
        )
        .with_for_update()
    )


def _lock_pair(grant_id: int) -> tuple[FreeSpinGrant, PlayerBonus]:
    row = db.session.get_one(FreeSpinGrant, grant_id)
    bonus = bonuses.locked_existing(PlayerBonus, row.bonus_id)
    return bonuses.locked_existing(FreeSpinGrant, grant_id), bonus


def pay_win(
    fsr: FreeSpinRound,
    *,
    amount: int,
    currency: str,
    source: str,
    transaction_id: str,
    claim_id: int,
    locked: wallet.LockedWallet,
) -> None:
    """Pay a free round's win as bonus money under the contract (wallet locked)."""
    if fsr.status == "reversed":
        raise FreeRoundRefused("ROUND_CLOSED", "This free round was rolled back")
    row, bonus = _lock_pair(fsr.grant_id)
    now = utcnow()
    fsr.status, fsr.settled_at = "settled", now
    if amount:
        _credit(row, bonus, amount, currency=currency, source=source,
                transaction_id=transaction_id, claim_id=claim_id, locked=locked,
                round_ext=fsr.external_round_id)  # fmt: skip
        fsr.win_minor += amount
    _maybe_finish(row, bonus)


def _credit(
    row: FreeSpinGrant,
    bonus: PlayerBonus,
    amount: int,
    *,
    currency: str,
    source: str,
    transaction_id: str,
    claim_id: int,
    locked: wallet.LockedWallet,
    round_ext: str | None,
) -> None:
    """Free-round winnings into the bonus balance under the contract (wallet locked)."""
    meta: dict[str, Any] = {"free_spin_grant": row.public_id, "player_bonus": bonus.id}
    if round_ext is not None:
        meta["round"] = round_ext
    posting = wallet.post(
        row.user_id,
        currency,
        "bonus_grant",
        bonus_delta=amount,
        source=source,
        idempotency_key=transaction_id,
        reference_type="provider_transaction",
        reference_id=claim_id,
        description="Free spin win",
        meta=meta,
        locked=locked,
    )
    row.won_minor += amount
    key = f"fs-win:{posting.transaction_id}"
    if bonus.status == "active":
        bonus.amount_minor += amount
        if row.wagering_multiplier == 0:
            _convert(bonus, amount, key)
        else:
            bonus.wagering_required_minor += amount * row.wagering_multiplier
    elif bonus.status == "completed" and row.wagering_multiplier == 0:
        _convert(bonus, amount, key)  # no wagering: a late win is still cash
    else:
        # The contract ended (forfeited/expired) while this round was in flight.
        bonuses.move(bonus, "bonus_forfeit", amount, key, cash=False)
        bonus.forfeited_minor += amount


def grant_owner(provider_id: int, grant_ref: str) -> tuple[int, str] | None:
    """(player id, currency) of this provider's grant named by our issue id or its reference."""
    row = db.session.execute(
        select(FreeSpinGrant.user_id, FreeSpinGrant.currency)
        .where(
            FreeSpinGrant.provider_id == provider_id,
            or_(FreeSpinGrant.public_id == grant_ref, FreeSpinGrant.provider_ref == grant_ref),
        )
        .order_by(FreeSpinGrant.id)
        .limit(1)
    ).one_or_none()
    return None if row is None else (row.user_id, row.currency)


def settle_grant(
    provider_id: int,
    grant_ref: str,
    *,
    amount: int,
    currency: str,
    played: bool,
    source: str,
    transaction_id: str,
    claim_id: int,
    locked: wallet.LockedWallet,
) -> None:
    """The aggregator reports the outcome of a whole grant (SoftSwiss ``/freespins``): its
    total win is credited once (the caller's claim on ``transaction_id`` keeps it once) and the
    grant ends: ``used`` when every spin was played, else ``expired`` (wallet locked)."""
    grant_id = db.session.scalar(
        select(FreeSpinGrant.id).where(
            FreeSpinGrant.provider_id == provider_id,
            or_(FreeSpinGrant.public_id == grant_ref, FreeSpinGrant.provider_ref == grant_ref),
        )
    )
    if grant_id is None:
        raise FreeRoundRefused("TRANSACTION_NOT_FOUND", "Unknown free-rounds issue")
    row, bonus = _lock_pair(grant_id)
    if row.currency != currency:
        raise FreeRoundRefused("VALIDATION_ERROR", f"These free rounds are in {row.currency}")
    if row.remote_status == "failed":
        raise FreeRoundRefused("ROUND_CLOSED", "The aggregator refused these free rounds")
    if row.remote_status == "pending":
        # Its answer to our issue call was lost, but it played them: they were issued.
        row.remote_status, row.issued_at, row.remote_error = "issued", utcnow(), None
    now = utcnow()
    if amount:
        _credit(row, bonus, amount, currency=currency, source=source,
                transaction_id=transaction_id, claim_id=claim_id, locked=locked,
                round_ext=None)  # fmt: skip
    if row.status == "active":
        if played:
            row.spins_used = row.spins_total
        row.status = "used" if played else "expired"
        row.ended_at = now
        audit.record(f"bonus.free_spins_{row.status}", target_type="player_bonus",
                     target_id=bonus.id, after={"grant": row.public_id, "reported": True,
                                                "won": format_minor(row.won_minor,
                                                                    row.currency)})  # fmt: skip
    _after_spins(bonus, now)


def _convert(bonus: PlayerBonus, amount: int, key: str) -> None:
    cap = bonus.max_cashout_minor
    convert = amount if cap is None else max(min(amount, cap - bonus.converted_minor), 0)
    if convert:
        bonuses.move(bonus, "bonus_convert", convert, key, cash=True)
        bonus.converted_minor += convert
    if amount - convert:
        bonuses.move(bonus, "bonus_forfeit", amount - convert, key, cash=False)
        bonus.forfeited_minor += amount - convert


def win_reversed(
    fsr: FreeSpinRound,
    *,
    amount: int,
    currency: str,
    source: str,
    transaction_id: str,
    reverses: str,
    claim_id: int,
    locked: wallet.LockedWallet,
) -> None:
    """The provider rolled back a free round's win of ``amount`` (wallet locked).

    Undone only while the win is still bonus money of an active contract with wagering:
    the bonus balance, the bonus amount and wagering requirement, the grant's and the round's
    winnings all shrink by it (and the contract may complete now). Otherwise the money is no
    longer this contract's to take back — converted to cash (no wagering, or the contract
    completed), forfeited (the contract ended) or spent in play — and the rollback is refused
    (``ROUND_CLOSED``, or ``INSUFFICIENT_FUNDS`` for spent money) for staff to review."""
    row, bonus = _lock_pair(fsr.grant_id)
    review = {
        "free_spin_grant": row.public_id,
        "round": fsr.external_round_id,
        "player_bonus": bonus.id,
        "bonus_status": bonus.status,
        "win_transaction_id": reverses,
        "rollback_transaction_id": transaction_id,
        "amount": format_minor(amount, currency),
        "currency": currency,
    }
    if bonus.status != "active" or row.wagering_multiplier == 0:
        outcome = "paid as cash" if row.wagering_multiplier == 0 else f"bonus {bonus.status}"
        raise FreeRoundRefused(
            "ROUND_CLOSED",
            f"The free round's win was already settled ({outcome}); it cannot be rolled back",
            review={**review, "reason": "contract_settled"},
        )
    try:
        wallet.post(
            fsr.user_id,
            currency,
            "rollback",
            bonus_delta=-amount,
            source=source,
            idempotency_key=transaction_id,
            reference_type="provider_transaction",
            reference_id=claim_id,
            description="Free spin win rolled back",
            meta={
                "reverses": reverses,
                "free_spin_grant": row.public_id,
                "round": fsr.external_round_id,
                "player_bonus": bonus.id,
            },
            locked=locked,
        )
    except InsufficientBalance:
        raise FreeRoundRefused(
            "INSUFFICIENT_FUNDS",
            "The free spin win was already spent; the rollback cannot be applied",
            review={**review, "reason": "spent"},
        ) from None
    fsr.win_minor -= amount
    row.won_minor -= amount
    bonus.amount_minor -= amount
    bonus.wagering_required_minor = max(
        bonus.wagering_required_minor - amount * row.wagering_multiplier, 0
    )
    audit.record("bonus.free_spin_win_reversed", target_type="player_bonus", target_id=bonus.id,
                 after={"grant": row.public_id, "round": fsr.external_round_id,
                        "amount": format_minor(amount, currency), "currency": currency,
                        "amount_now": format_minor(bonus.amount_minor, currency),
                        "wagering_required": format_minor(bonus.wagering_required_minor,
                                                          currency)})  # fmt: skip
    if row.status != "active":
        _after_spins(bonus, utcnow())  # the smaller requirement may be met already


def flag_for_review(user_id: int, review: dict[str, Any]) -> None:
    """A refused rollback of a free-spin win: audited and (once while open) a
    ``free_spin_rollback_refused`` risk flag. Runs in its own transaction after the refused
    callback's was rolled back (the provider retries, so it may come more than once)."""
    reference = f"free_round:{review['free_spin_grant']}:{review['round']}"[:100]
    log.warning("refused rollback of free spin win for user %s: %s", user_id, review)
    audit.record(
        "bonus.free_spin_rollback_refused", target_type="user", target_id=user_id, after=review
    )
    already = db.session.scalar(
        select(RiskFlag.id).where(
            RiskFlag.user_id == user_id,
            RiskFlag.kind == "free_spin_rollback_refused",
            RiskFlag.reference == reference,
            RiskFlag.status == "open",
        )
    )
    if already is None:
        risk.flag("free_spin_rollback_refused", user_id=user_id, reference=reference,
                  details=review)  # fmt: skip


def bet_reversed(provider_id: int, bet_transaction_id: str) -> None:
    """A free bet was refunded/rolled back: the spin is given back (wallet locked)."""
    fsr = db.session.scalar(
        select(FreeSpinRound)
        .where(
            FreeSpinRound.provider_id == provider_id,
            FreeSpinRound.bet_transaction_id == bet_transaction_id,
        )
        .with_for_update()
    )
    if fsr is None or fsr.status != "played":
        return
    row, bonus = _lock_pair(fsr.grant_id)
    fsr.status, fsr.settled_at = "reversed", utcnow()
    row.spins_used -= 1
    if row.status == "used":
        row.status, row.ended_at = "active", None
    _maybe_finish(row, bonus)


def round_ended(provider_id: int, round_ext: str) -> None:
    """``end_round`` of a free round that had no win callback: settled with nothing.

    The caller holds the player's wallet lock in the round's currency, taken *before* the
    round row (the order of bets and wins: the other way round deadlocks with a win)."""
    fsr = free_round(provider_id, round_ext)
    if fsr is None or fsr.status != "played":
        return
    row, bonus = _lock_pair(fsr.grant_id)
    fsr.status, fsr.settled_at = "settled", utcnow()
    _maybe_finish(row, bonus)


# --- end of the spins ------------------------------------------------------------------------


def spins_pending(bonus_id: int) -> bool:
    """True while the bonus's free rounds are still being played (wagering waits)."""
    return bool(
        db.session.scalar(
            select(FreeSpinGrant.id).where(
                FreeSpinGrant.bonus_id == bonus_id, FreeSpinGrant.status == "active"
            )
        )
    )


def _unsettled(grant_id: int) -> int:
    return db.session.execute(
        select(func.count(FreeSpinRound.id)).where(
            FreeSpinRound.grant_id == grant_id, FreeSpinRound.status == "played"
        )
    ).scalar_one()


def _maybe_finish(row: FreeSpinGrant, bonus: PlayerBonus, *, now: datetime | None = None) -> None:
    """End the grant once no spin can be played any more and none is in flight; then the
    bonus becomes a plain wagering contract over the winnings (or completes now)."""
    now = now or utcnow()
    if row.status == "active":
        if row.spins_used < row.spins_total and row.expires_at > now:
            return
        if _unsettled(row.id):
            return
        row.status = "used" if row.spins_used >= row.spins_total else "expired"
        row.ended_at = now
        audit.record(f"bonus.free_spins_{row.status}", target_type="player_bonus",
                     target_id=bonus.id, after={"grant": row.public_id, "used": row.spins_used,
                                                "total": row.spins_total,
                                                "won": format_minor(row.won_minor,
                                                                    row.currency)})  # fmt: skip
    elif row.status != "used" or _unsettled(row.id):
        return
    _after_spins(bonus, now)


def _after_spins(bonus: PlayerBonus, now: datetime) -> None:
    """The spins are over: the bonus is a wagering contract over the winnings, or done."""
    if bonus.status != "active":
        return
    if bonus.amount_minor == 0 or bonus.wagering_required_minor == 0:
        BONUS_STATES.move(bonus, "completed")
        bonus.ended_at = now
        bonus.end_reason = (
            "free spins won nothing" if bonus.amount_minor == 0 else "free spin winnings paid"
        )
        bonuses.bonus_event(bonus, "completed")
    elif bonus.wagering_progress_minor >= bonus.wagering_required_minor:
        bonuses.complete(bonus)
    else:
        bonuses.bonus_event(bonus, "wagering")


def close_for_bonus(bonus: PlayerBonus, status: str) -> None:
    """The bonus ended (forfeit, expiry): the spins left are forfeited and the provider told."""
    row = db.session.scalar(
        select(FreeSpinGrant)
        .where(FreeSpinGrant.bonus_id == bonus.id, FreeSpinGrant.status == "active")
        .with_for_update()
    )
    if row is None:
        return
    row.status = "expired" if status == "expired" else "forfeited"
    row.ended_at = utcnow()
    if row.remote_status is not None:
        if row.remote_status == "issued":
            _send_later("cancel_free_round", cancel_remote, row.id)
        elif row.remote_status == "pending":
            row.remote_status = "cancelled"  # never issued: nothing to withdraw there
        return
    provider = db.session.get(Provider, row.provider_id)
    adapter = adapter_for(provider.code) if provider else None
    if adapter is not None:
        adapter.cancel(row.public_id)


# --- issuing through an aggregator's API ------------------------------------------------------


def _send_later(job_name: str, send: Callable[[int], Any], grant_id: int) -> None:
    """Once the caller's transaction has committed, ``send(grant_id)`` (an HTTP call to the
    aggregator, up to ``aggregator_api.TIMEOUTS``) where no one waits for it:

    * outside a request (a job, an operator command) at once: nothing waits on it;
    * in a request, as the RQ job ``app.bonus.jobs.<job_name>`` when a worker runs jobs;
    * in a request otherwise (embedded mode, or Redis refused the job): once the answer has
      gone out (the response's ``call_on_close``), in this process.

    A send lost in between (a crash) leaves the grant ``pending``: ``retry_pending`` sends it.
    """
    on_commit(partial(_dispatch, job_name, send, grant_id))


def _dispatch(job_name: str, send: Callable[[int], Any], grant_id: int) -> None:
    if not has_request_context():
        send(grant_id)
        return
    if queues.queue().is_async:
        try:
            queues.enqueue(f"app.bonus.jobs.{job_name}", grant_id)
            return
        except Exception as exc:  # Redis down: the answer must not fail, nor wait
            log.warning("free rounds %s of grant %s not queued (%s): sent after the answer",
                        job_name, grant_id, exc)  # fmt: skip
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    @after_this_request
    def _after_answer(response: Response) -> Response:
        response.call_on_close(partial(_run_detached, app, send, grant_id))
        return response


def _run_detached(app: Flask, send: Callable[[int], Any], grant_id: int) -> None:
    """``send`` once the response is closed (the request's context is gone by then)."""
    if has_app_context():  # a test client closing the response inside the test's context
        _run_logged(send, grant_id)
        return
    with app.app_context():
        _run_logged(send, grant_id)


def _run_logged(send: Callable[[int], Any], grant_id: int) -> None:
    try:
        send(grant_id)
    except Exception:
        # The claim is committed; a lost send leaves the grant pending for ``retry_pending``.
        log.exception("free rounds call for grant %s failed", grant_id)


def issue_remote(grant_id: int, *, include_failed: bool = False) -> str | None:
    """Send a pending grant (or, with ``include_failed``, a failed one) to the aggregator with
    its issue id (``public_id``); answers the grant's remote status afterwards.

    The HTTP call runs outside any transaction. Two retries racing may both send: they send the
    same issue id, which the aggregator keys its grant by."""
    sendable = ("pending", "failed") if include_failed else ("pending",)
    with atomic():
        row = bonuses.locked_existing(FreeSpinGrant, grant_id)
        if row.remote_status not in sendable:
            return row.remote_status
        if row.status != "active":
            row.remote_status = "cancelled"
            return row.remote_status
        provider = db.session.get_one(Provider, row.provider_id)
        client = aggregator_api.client_for(provider)
        if client is None:
            row.remote_error = "the provider has no aggregator API (api_url) any more"
            return row.remote_status
        game = db.session.get_one(Game, row.game_id)
        row.issue_attempts += 1
        account = aggregator_api.Account.of(provider)
        offer = aggregator_api.RemoteGrant(
            issue_id=row.public_id,
            player_id=row.user_id,
            game_external_id=game.external_id,
            currency=row.currency,
            spin_value_minor=row.spin_value_minor,
            spins=row.spins_total,
            expires_at=row.expires_at,
        )
    reference: str | None = None
    error: str | None = None
    try:
        reference = client.issue(account, offer)
        outcome = "issued"
    except aggregator_api.IssueRefused as exc:
        outcome, error = "failed", str(exc)
    except aggregator_api.IssueUnavailable as exc:
        outcome, error = "pending", str(exc)
    withdraw = False
    with atomic():
        row = bonuses.locked_existing(FreeSpinGrant, grant_id)
        if row.remote_status == "issued":
            return "issued"  # a racing retry recorded it first
        before = row.remote_status
        if outcome == "issued":
            row.remote_status, row.provider_ref, row.issued_at = "issued", reference, utcnow()
            row.remote_error = None
            withdraw = row.status != "active"  # the bonus ended while the call was out
        else:
            row.remote_status = outcome if before != "cancelled" else before
            row.remote_error = (error or "")[:500]
            log.warning("free rounds %s not issued (%s): %s", row.public_id, outcome, error)
        audit.record("bonus.free_spins_issue", target_type="player_bonus",
                     target_id=row.bonus_id, after={"grant": row.public_id,
                                                    "outcome": outcome, "error": error,
                                                    "reference": reference,
                                                    "attempt": row.issue_attempts})  # fmt: skip
        status = row.remote_status
    if withdraw:
        cancel_remote(grant_id)
    return status


def cancel_remote(grant_id: int) -> None:
    """Withdraw an issued grant at the aggregator (best effort: logged when it fails)."""
    with atomic():
        row = bonuses.locked_existing(FreeSpinGrant, grant_id)
        if row.remote_status != "issued":
            return
        provider = db.session.get_one(Provider, row.provider_id)
        client = aggregator_api.client_for(provider)
        if client is None:
            return
        account = aggregator_api.Account.of(provider)
        issue_id, reference = row.public_id, row.provider_ref
    try:
        client.cancel(account, issue_id, reference)
    except (aggregator_api.IssueRefused, aggregator_api.IssueUnavailable) as exc:
        log.warning("free rounds %s not cancelled at the aggregator: %s", issue_id, exc)
        return
    with atomic():
        row = bonuses.locked_existing(FreeSpinGrant, grant_id)
        if row.remote_status == "issued":
            row.remote_status = "cancelled"


def retry_pending(*, older_than: timedelta = timedelta(seconds=30)) -> dict[str, int]:
    """Issue again every grant still pending (job ``issue_free_rounds``); those younger than
    ``older_than`` are left to their claim's own after-commit call."""
    due = db.session.scalars(
        select(FreeSpinGrant.id)
        .where(
            FreeSpinGrant.remote_status == "pending",
            FreeSpinGrant.created_at <= utcnow() - older_than,
        )
        .order_by(FreeSpinGrant.id)
        .limit(500)
    ).all()
    counts: dict[str, int] = {}
    for grant_id in due:
        status = issue_remote(grant_id) or "none"
        counts[status] = counts.get(status, 0) + 1
    return counts


def expire_due(now: datetime | None = None) -> int:
    """Grants past their validity: the spins left are forfeited (job). Each in its own
    transaction, re-checked under the locks."""
    now = now or utcnow()
    due = db.session.execute(
        select(FreeSpinGrant.id, FreeSpinGrant.user_id, FreeSpinGrant.currency).where(
            FreeSpinGrant.status == "active", FreeSpinGrant.expires_at <= now
        )
    ).all()
    done = 0
    for grant_id, user_id, currency in due:
        with atomic():
            wallet.lock(user_id, currency)
            row, bonus = _lock_pair(grant_id)
            if row.status != "active" or row.expires_at > now:
                continue
            # A spin in flight finishes the grant when its win arrives; one the provider
            # never settled (an hour after the expiry) is closed with nothing, so a lost
            # round cannot hold the bonus's wagering back. A later win is still paid.
            if row.expires_at < now - ABANDONED_AFTER:
                db.session.execute(
                    update(FreeSpinRound)
                    .where(
                        FreeSpinRound.grant_id == row.id,
                        FreeSpinRound.status == "played",
                        FreeSpinRound.created_at < now - ABANDONED_AFTER,
                    )
                    .values(status="settled", settled_at=now)
                )
            if _unsettled(row.id) == 0:
                _maybe_finish(row, bonus, now=now)
                done += 1
    return done


# --- player view -----------------------------------------------------------------------------


def player_grants(user_id: int, *, active_only: bool = False) -> list[dict[str, Any]]:
    stmt = (
        select(FreeSpinGrant, Game)
        .join(Game, Game.id == FreeSpinGrant.game_id)
        .where(FreeSpinGrant.user_id == user_id)
        .order_by(FreeSpinGrant.id.desc())
    )
    if active_only:
        stmt = stmt.where(FreeSpinGrant.status == "active", FreeSpinGrant.expires_at > utcnow())
    return [bonuses.grant_json(row, game) for row, game in db.session.execute(stmt).all()]
