"""Progressive jackpots: contributions, draws, payouts.

Invariants:
* No hot row on the bet path. A bet (``play_events`` listener, inside the callback's money
  transaction) reads the currency's active pools ``FOR KEY SHARE`` (shared locks do not wait
  for each other) and appends one ``jackpot_contributions`` row per eligible pool. The pool
  amount is ``seed + carry_amount + rolled_amount + sum(contributions with id >
  rolled_through_id)``, bounded by the cap and the must-drop bound.
* Anything that changes a pool's cycle or folds contributions (win, rollup, must-drop check)
  takes the pool row ``FOR UPDATE``: it waits for the in-flight bets holding the key-share lock
  to commit, so every contribution of the cycle is visible, and any later contribution gets a
  larger id and reads the new cycle. Id watermarks are therefore exact.
* Lock order wallet → pool → win, the bet path's (a bet locks the wallet, then reads the pool
  ``FOR KEY SHARE``). A payout (job award, must-drop, drop deadline, manual) first reads who
  wins without locks, locks that player's wallet, then the pool, and reads again; if the
  winner changed meanwhile it starts over. A provider's ``jackpot_win`` arrives with the
  wallet already locked by the callback.
* At most one win per (pool, cycle) (unique index); a provider-reported win also at most one
  per (pool, game round), and only for a round with a real stake ≥ the pool's minimum bet. A
  win is paid exactly once: the ledger posting's idempotency key is ``jackpot_win:<win id>``
  and the win row is locked and marked paid in the same transaction. The pool then restarts at
  its seed plus ``carry_amount`` (what a smaller provider-reported win left in the pool), plus
  the contributions made after the winning bet.
* Draws use ``secrets`` (CSPRNG) and keep their evidence on the win row: the odds and drawn
  number for a random hit; for must-drop the secret drop point, its salt and the commitment
  ``sha256("<point>:<salt>")`` that was public since the cycle started.
* Funding: contributions are an earmark of the house's game revenue (``house:games`` legs of the
  bets), kept in this sub-ledger; a payout is a ``jackpot_win`` ledger transaction whose other leg
  is ``house:jackpots``. ``reconcile()`` proves every paid win has exactly its ledger posting.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, String, cast, func, literal, select

from app.core import audit, notifications
from app.core.base import iso_or_none as _iso
from app.core.base import utcnow
from app.core.db import atomic, dialect_insert, lock_one, on_commit, parse_row_id
from app.core.errors import AccessDenied, Conflict, NotFound, ValidationError
from app.core.events import publish
from app.core.extensions import db, redis_store
from app.core.i18n import Msg
from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor, to_decimal
from app.core.queues import enqueue_after_commit
from app.identity.models import ADMIN, User
from app.play import events as play_events
from app.play.models import Provider
from app.play.seams import JackpotBusy
from app.prizes.models import JackpotContribution, JackpotPool, JackpotWin
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction

SOURCE = "jackpots"
ROOM = "global"
EDITABLE = (
    "name",
    "status",
    "tier",
    "group_code",
    "seed_amount",
    "contribution_bps",
    "cap_amount",
    "must_drop_by",
    "hit_odds",
    "min_bet",
    "game_ids",
    "drop_window_seconds",
    "provider_id",
)


# --------------------------------------------------------------------------- bet path


def wanted(_user_id: Any, currency: Any, _game_id: Any, _now: Any) -> ColumnElement[bool]:
    """``play_events`` bet probe: is any pool active in the bet's currency? (Without one,
    :func:`on_play` would read no pool and write nothing.)"""
    p = JackpotPool
    return select(p.id).where(p.currency == currency, p.status == "active").exists()


def on_play(event: play_events.PlayEvent) -> None:
    """Listener: append this bet's contributions and draw the random hits (cheap, no raise);
    a refunded/rolled-back bet's contributions are reversed while their cycle is open."""
    if event.kind in ("refund", "rollback") and event.reverses == "bet":
        _reverse_contributions(event)
        return
    if event.kind != "bet" or event.amount <= 0:
        return
    session = db.session
    p = JackpotPool
    pools = session.execute(
        select(
            p.id,
            p.cycle,
            p.contribution_bps,
            p.min_bet,
            p.game_ids,
            p.cap_amount,
            p.seed_amount,
            p.rolled_amount,
            p.hit_odds,
            p.drop_at,
        )
        .where(p.currency == event.currency, p.status == "active")
        .with_for_update(read=True, key_share=True)
    ).all()
    touched: list[int] = []
    for pool in pools:
        if event.amount < pool.min_bet:
            continue
        if pool.game_ids is not None and event.game_id not in pool.game_ids:
            continue
        share = event.amount * pool.contribution_bps // 10_000
        capped = pool.cap_amount is not None and (
            pool.seed_amount + pool.rolled_amount >= pool.cap_amount
        )
        contribution_id = None
        if share > 0 and not capped:
            contribution_id = session.execute(
                dialect_insert(JackpotContribution)
                .values(
                    pool_id=pool.id,
                    cycle=pool.cycle,
                    user_id=event.user_id,
                    transaction_id=event.transaction_id,
                    bet_amount=event.amount,
                    amount=share,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["transaction_id", "pool_id"])
                .returning(JackpotContribution.id)
            ).scalar_one_or_none()
            touched.append(pool.id)
        if pool.drop_at is not None and utcnow() >= pool.drop_at:
            # Must-drop by time: the first eligible bet at/after the secret time wins.
            _record_hit(pool, event, contribution_id, None, trigger="drop_time")
        elif pool.hit_odds:
            drawn = secrets.randbelow(pool.hit_odds)
            if drawn == 0:
                _record_hit(pool, event, contribution_id, drawn)
    if touched:
        on_commit(lambda: tick(touched))


def _record_hit(
    pool: Any,
    event: play_events.PlayEvent,
    contribution_id: int | None,
    drawn: int | None,
    *,
    trigger: str = "random",
):
    evidence: dict[str, Any] = {
        "bet_amount": event.amount,
        "transaction_id": event.transaction_id,
        "round_id": event.round_id,
    }
    if trigger == "random":
        evidence.update(
            rng="secrets.randbelow", odds=f"1/{pool.hit_odds}", drawn=drawn, winning_value=0
        )
    else:
        evidence.update(rule="first eligible bet at or after the committed drop time")
    win_id = db.session.execute(
        dialect_insert(JackpotWin)
        .values(
            pool_id=pool.id,
            cycle=pool.cycle,
            user_id=event.user_id,
            currency=event.currency,
            trigger=trigger,
            status="pending",
            contribution_id=contribution_id,
            evidence=evidence,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["pool_id", "cycle"])
        .returning(JackpotWin.id)
    ).scalar_one_or_none()
    # None: this cycle already has a win awaiting payout; a cycle is won once.
    if win_id is not None:
        enqueue_after_commit("app.prizes.jobs.award_jackpot", win_id)


def _reverse_contributions(event: play_events.PlayEvent) -> None:
    """A refunded or rolled-back bet takes its contributions back, by a negative row in the
    same pool, if the contribution's cycle is still the pool's current one and has no win
    drawn yet. A cycle that was won (or whose win is pending) keeps the contribution: the win
    was computed with it."""
    bet_claim = event.reverses_transaction_id
    if bet_claim is None:
        return
    c = JackpotContribution
    rows = db.session.execute(
        select(c.id, c.pool_id, c.cycle, c.amount, c.bet_amount).where(
            c.transaction_id == bet_claim, c.reversal_of_id.is_(None), c.amount > 0
        )
    ).all()
    if not rows:
        return
    pools = {
        row.id: row.cycle
        for row in db.session.execute(
            select(JackpotPool.id, JackpotPool.cycle)
            .where(JackpotPool.id.in_({r.pool_id for r in rows}))
            .with_for_update(read=True, key_share=True)
        )
    }
    won = set(
        db.session.execute(
            select(JackpotWin.pool_id, JackpotWin.cycle).where(JackpotWin.pool_id.in_(list(pools)))
        ).all()
    )
    touched: list[int] = []
    for row in rows:
        if pools.get(row.pool_id) != row.cycle or (row.pool_id, row.cycle) in won:
            continue
        db.session.execute(
            dialect_insert(c)
            .values(
                pool_id=row.pool_id,
                cycle=row.cycle,
                user_id=event.user_id,
                transaction_id=event.transaction_id,
                bet_amount=-row.bet_amount,
                amount=-row.amount,
                reversal_of_id=row.id,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["transaction_id", "pool_id"])
        )
        touched.append(row.pool_id)
    if touched:
        on_commit(lambda: tick(touched))


# --------------------------------------------------------------------------- amounts


def _tail_sum(pool_id: int, after_id: int, through_id: int | None = None) -> int:
    c = JackpotContribution
    q = select(func.coalesce(func.sum(c.amount), 0)).where(c.pool_id == pool_id, c.id > after_id)
    if through_id is not None:
        q = q.where(c.id <= through_id)
    return int(db.session.execute(q).scalar_one())


def _max_contribution_id(pool_id: int) -> int:
    c = JackpotContribution
    return int(
        db.session.execute(
            select(func.coalesce(func.max(c.id), 0)).where(c.pool_id == pool_id)
        ).scalar_one()
    )


def _bounded(pool: JackpotPool, amount: int) -> int:
    for bound in (pool.cap_amount, pool.must_drop_by):
        if bound is not None:
            amount = min(amount, bound)
    return amount


def amount_of(pool: JackpotPool) -> int:
    """Current amount: seed + carried amount + contributions of the cycle (aggregated on
    read), bounded by the cap and the must-drop bound."""
    raw = (
        pool.seed_amount
        + pool.carry_amount
        + pool.rolled_amount
        + _tail_sum(pool.id, pool.rolled_through_id)
    )
    return _bounded(pool, raw)


def _new_drop_point(pool: JackpotPool) -> None:
    """Start of a cycle: draw (and commit to) the secret must-drop amount and time."""
    _new_drop_time(pool)
    if pool.must_drop_by is None:
        pool.drop_point = pool.drop_salt = pool.drop_commitment = None
        return
    pool.drop_point = pool.seed_amount + secrets.randbelow(pool.must_drop_by - pool.seed_amount)
    pool.drop_salt = secrets.token_hex(16)
    pool.drop_commitment = drop_commitment(pool.drop_point, pool.drop_salt)


def _new_drop_time(pool: JackpotPool) -> None:
    """Must-drop by time: a secret time, uniform to the second in [now, now + window)."""
    now = utcnow().replace(microsecond=0)
    pool.cycle_started_at = now
    if not pool.drop_window_seconds:
        pool.drop_deadline = pool.drop_at = pool.drop_at_salt = pool.drop_at_commitment = None
        return
    pool.drop_deadline = now + timedelta(seconds=pool.drop_window_seconds)
    pool.drop_at = now + timedelta(seconds=secrets.randbelow(pool.drop_window_seconds))
    pool.drop_at_salt = secrets.token_hex(16)
    pool.drop_at_commitment = drop_time_commitment(pool.drop_at, pool.drop_at_salt)


def drop_commitment(point: int, salt: str) -> str:
    return hashlib.sha256(f"{point}:{salt}".encode()).hexdigest()


def drop_time_commitment(at: datetime, salt: str) -> str:
    """sha256("<unix seconds>:<salt>") of the secret drop time."""
    return hashlib.sha256(f"{int(at.timestamp())}:{salt}".encode()).hexdigest()


# --------------------------------------------------------------------------- wins


def _lock_fresh(model: Any, *criteria: Any) -> Any:
    """``lock_one`` that also refreshes an object this session read before the lock."""
    stmt = (
        select(model)
        .where(*criteria)
        .with_for_update(of=model)
        .execution_options(populate_existing=True)
    )
    return db.session.execute(stmt).scalar_one_or_none()


def award(win_id: int) -> JackpotWin:
    """Pay a pending win (job; idempotent: a paid win is returned as it is).

    Lock order: the winner's wallet, then the pool, then the win. A bet locks the wallet and
    then reads the pool ``FOR KEY SHARE``; taking the pool first would deadlock with the
    winner's next bet."""
    head = db.session.execute(
        select(JackpotWin.pool_id, JackpotWin.user_id, JackpotWin.currency).where(
            JackpotWin.id == win_id
        )
    ).first()
    if head is None:
        raise NotFound("Jackpot win not found")
    with atomic():
        wallet.lock(head.user_id, head.currency)
        pool = _lock_fresh(JackpotPool, JackpotPool.id == head.pool_id)
        win = _lock_fresh(JackpotWin, JackpotWin.id == win_id)
        if win.status == "paid":
            return win
        _pay_locked(pool, win)
        return win


def _pay_locked(pool: JackpotPool, win: JackpotWin, pay: int | None = None) -> None:
    """With the winner's wallet, pool and win locked: pay, close the cycle, restart at the
    seed plus what is carried (``carry_amount``).

    ``pay`` (a provider-reported win) pays less than the pool holds; the rest is carried into
    the next cycle (``carry_amount``)."""
    if win.cycle != pool.cycle:  # unique (pool, cycle) + cycle moves only here
        raise Conflict("Jackpot win does not belong to the pool's current cycle")
    last_id = _max_contribution_id(pool.id)
    end_id = win.contribution_id or last_id
    full = _bounded(
        pool,
        pool.seed_amount
        + pool.carry_amount
        + _tail_sum(pool.id, pool.base_contribution_id, end_id),
    )
    won = full if pay is None else pay
    if won > full:
        raise Conflict("The amount is larger than the jackpot")
    if won > 0:
        posting = wallet.post(
            win.user_id,
            win.currency,
            "jackpot_win",
            cash_delta=won,
            source=SOURCE,
            idempotency_key=f"jackpot_win:{win.id}",
            reference_type="jackpot_win",
            reference_id=win.id,
            description=f"Jackpot {pool.name}",
            meta={"pool_id": pool.id, "cycle": pool.cycle, "trigger": win.trigger},
            actor=win.actor_id,
        )
        win.ledger_transaction_id = posting.transaction_id
    if win.trigger == "drop_time":
        win.evidence = {
            **(win.evidence or {}),
            "cycle_started_at": _iso(pool.cycle_started_at),
            "drop_deadline": _iso(pool.drop_deadline),
            "drop_at": int(pool.drop_at.timestamp()) if pool.drop_at else None,
            "salt": pool.drop_at_salt,
            "commitment": pool.drop_at_commitment,
        }
    win.amount = won
    win.status = "paid"
    win.paid_at = utcnow()
    # Bets after the winning one start the next cycle.
    pool.cycle += 1
    pool.carry_amount = full - won
    pool.base_contribution_id = end_id
    pool.rolled_amount = _tail_sum(pool.id, end_id, last_id)
    pool.rolled_through_id = max(end_id, last_id)
    _new_drop_point(pool)
    db.session.flush()
    payload = {
        **pool_json(pool),
        "won": {
            "win_id": win.id,
            "amount": format_minor(won, win.currency),
            "trigger": win.trigger,
        },
    }
    publish("jackpot.update", payload, room=ROOM)
    notifications.notify(
        win.user_id,
        "jackpot_win",
        Msg("Jackpot!"),
        Msg(
            "You won %(amount)s %(currency)s (%(pool)s)",
            amount=format_minor(won, win.currency),
            currency=win.currency,
            pool=pool.name,
        ),
        data={"win_id": win.id, "pool_id": pool.id},
        dedupe_key=f"jackpot_win:{win.id}",
    )


def _cycle_win(pool: JackpotPool) -> JackpotWin | None:
    """The win already drawn in the pool's current cycle (pending or paid), if any."""
    return db.session.scalar(
        select(JackpotWin).where(JackpotWin.pool_id == pool.id, JackpotWin.cycle == pool.cycle)
    )


def _pay_pending(pool: JackpotPool, win: JackpotWin) -> JackpotWin:
    """With the winner's wallet and the pool locked: pay the cycle's drawn win if it still
    waits (a random hit or drop-time win whose job has not run yet)."""
    if win.status == "pending":
        win = _lock_fresh(JackpotWin, JackpotWin.id == win.id)
        if win.status == "pending":
            _pay_locked(pool, win)
    return win


def _live_contributions(pool: JackpotPool) -> tuple[Any, ...]:
    """Criteria for the current cycle's contributions that still count: reversed ones
    (refunded bets) and their reversals are left out, so a refunded bet can neither reach the
    must-drop point nor be the last bettor at the deadline."""
    c = JackpotContribution
    reversed_ids = select(c.reversal_of_id).where(
        c.pool_id == pool.id, c.reversal_of_id.is_not(None)
    )
    return (
        c.pool_id == pool.id,
        c.id > pool.base_contribution_id,
        c.reversal_of_id.is_(None),
        c.id.not_in(reversed_ids),
    )


def _must_drop_due(pool: JackpotPool | None) -> bool:
    return pool is not None and pool.status == "active" and pool.drop_point is not None


def _must_drop_crossing(pool: JackpotPool) -> Any:
    """The contribution whose running total (id order) reaches the drop point, or None."""
    if pool.drop_point is None:  # only called for a pool _must_drop_due accepted
        raise ValueError(f"jackpot pool {pool.id} has no drop point")
    c = JackpotContribution
    running = (
        select(c.id, c.user_id, func.sum(c.amount).over(order_by=c.id).label("running"))
        .where(*_live_contributions(pool))
        .subquery()
    )
    needed = max(pool.drop_point - pool.seed_amount - pool.carry_amount, 1)
    return db.session.execute(
        select(running.c.id, running.c.user_id, running.c.running)
        .where(running.c.running >= needed)
        .order_by(running.c.id)
        .limit(1)
    ).first()


def _drop_deadline_due(pool: JackpotPool | None) -> bool:
    return (
        pool is not None
        and pool.status == "active"
        and pool.drop_deadline is not None
        and utcnow() >= pool.drop_deadline
    )


def _last_live_contribution(pool: JackpotPool) -> Any:
    c = JackpotContribution
    return db.session.execute(
        select(c.id, c.user_id, c.transaction_id)
        .where(*_live_contributions(pool))
        .order_by(c.id.desc())
        .limit(1)
    ).first()


#: A drop check whose winner changed between the unlocked read and the locks starts over at
#: most this many times (then the next ticker/job run decides).
_DROP_ATTEMPTS = 3


def _settle_drop(pool_id: int, due: Any, find: Any, make_win: Any, nobody: Any = None):
    """Drive a must-drop check in the bet path's lock order: wallet, then pool.

    Who wins is read first without locks (the pending win's player, else ``find(pool)``); then
    that player's wallet is locked, then the pool ``FOR UPDATE``, and everything is read again.
    If the winner changed meanwhile (a refund reversed the contribution, another check paid the
    cycle) the attempt ends without writing and starts over."""
    for _attempt in range(_DROP_ATTEMPTS):
        pool = db.session.execute(
            select(JackpotPool)
            .where(JackpotPool.id == pool_id)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if pool is None or not due(pool):
            return None
        drawn = _cycle_win(pool)
        if drawn is not None and drawn.status != "pending":
            return drawn
        row = None if drawn is not None else find(pool)
        target = drawn.user_id if drawn is not None else row.user_id if row is not None else None
        with atomic():
            if target is not None:
                wallet.lock(target, pool.currency)
            pool = _lock_fresh(JackpotPool, JackpotPool.id == pool_id)
            if not due(pool):
                return None
            drawn = _cycle_win(pool)
            if drawn is not None:
                if drawn.status != "pending":
                    return drawn
                if drawn.user_id == target:
                    return _pay_pending(pool, drawn)
                continue
            row = find(pool)
            if row is None:
                if target is None and nobody is not None:
                    nobody(pool)
                if target is None:
                    return None
                continue
            if row.user_id != target:
                continue
            win = make_win(pool, row)
            db.session.add(win)
            db.session.flush()
            _pay_locked(pool, win)
            return win
    return None


def check_must_drop(pool_id: int) -> JackpotWin | None:
    """Award the must-drop win if the cycle's contributions reached the drop point.

    The winner is the bet whose contribution makes the running total (in contribution id
    order) reach the drop point. A drawn win of the cycle still awaiting payout is paid
    instead."""

    def make_win(pool: JackpotPool, crossing: Any) -> JackpotWin:
        return JackpotWin(
            pool_id=pool.id,
            cycle=pool.cycle,
            user_id=crossing.user_id,
            currency=pool.currency,
            trigger="must_drop",
            status="pending",
            contribution_id=crossing.id,
            evidence={
                "rng": "secrets.randbelow",
                "must_drop_by": pool.must_drop_by,
                "drop_point": pool.drop_point,
                "salt": pool.drop_salt,
                "commitment": pool.drop_commitment,
                "rule": "first contribution (id order) whose running total reaches the point",
                "running_total": int(crossing.running),
            },
        )

    return _settle_drop(pool_id, _must_drop_due, _must_drop_crossing, make_win)


def may_pay_manually(actor: Any) -> bool:
    """Manual payouts are for Admins only (on top of ``promotions.manage``)."""
    return getattr(actor, "role_id", None) == ADMIN


def check_drop_deadline(pool_id: int) -> JackpotWin | None:
    """Must-drop by time, the job's half: at the deadline, a cycle that no bet won since its
    drop time goes to the last eligible bettor of the cycle (the newest contribution that was
    not reversed). A cycle without any contribution starts a new time window."""

    def make_win(pool: JackpotPool, last: Any) -> JackpotWin:
        return JackpotWin(
            pool_id=pool.id,
            cycle=pool.cycle,
            user_id=last.user_id,
            currency=pool.currency,
            trigger="drop_time",
            status="pending",
            contribution_id=last.id,
            evidence={
                "rule": "no bet since the drop time: the last eligible bettor at the deadline",
                "transaction_id": last.transaction_id,
            },
        )

    # Nobody played this window: a new secret time, same amount.
    return _settle_drop(
        pool_id, _drop_deadline_due, _last_live_contribution, make_win, nobody=_new_drop_time
    )


class JackpotRefused(ValidationError):
    """A provider-reported win this pool cannot pay (unknown pool, currency, amount...)."""


def pay_reported(
    pool_id: int,
    *,
    provider_id: int,
    user_id: int,
    currency: str,
    amount: int,
    game_id: int | None,
    game_round_id: int,
    round_stake: int,
    evidence: dict[str, Any],
) -> JackpotWin:
    """A provider-reported jackpot win (``jackpot_win`` callback), inside the callback's
    transaction (the player's wallet is already locked). Pool-funded: ``amount`` is paid from
    the pool, which must hold at least that much; the rest of the pool is carried into the
    next cycle, which starts at its seed.

    Bounded per round: the round must have a real stake (``round_stake``: its bets minus
    refunds; a free round has none) of at least the pool's minimum bet, and a round wins a
    pool once, whatever transaction id the provider reports it under (checked under the pool
    lock, which every report of the pool takes)."""
    pool = lock_one(JackpotPool, JackpotPool.id == pool_id)
    if pool is None or pool.provider_id is None or pool.provider_id != provider_id:
        raise JackpotRefused("Unknown jackpot")
    if pool.status != "active":
        raise JackpotRefused("This jackpot is paused")
    if pool.currency != currency:
        raise JackpotRefused(f"This jackpot is in {pool.currency}")
    if pool.game_ids is not None and game_id not in pool.game_ids:
        raise JackpotRefused("The round's game does not take part in this jackpot")
    if amount <= 0:
        raise JackpotRefused("amount must be positive")
    if round_stake <= 0 or round_stake < pool.min_bet:
        raise JackpotRefused(
            "The round has no stake that qualifies for this jackpot "
            f"(minimum bet {format_minor(pool.min_bet, pool.currency)})"
        )
    already = db.session.scalar(
        select(JackpotWin.id).where(
            JackpotWin.pool_id == pool.id, JackpotWin.game_round_id == game_round_id
        )
    )
    if already is not None:
        raise JackpotRefused("This round already won this jackpot")
    pending = db.session.scalar(
        select(JackpotWin.id).where(JackpotWin.pool_id == pool.id, JackpotWin.cycle == pool.cycle)
    )
    if pending is not None:
        raise JackpotBusy("A draw of this jackpot is being paid; retry")
    available = amount_of(pool)
    if amount > available:
        raise JackpotRefused(
            f"amount is larger than the jackpot ({format_minor(available, currency)})"
        )
    win = JackpotWin(
        pool_id=pool.id,
        cycle=pool.cycle,
        user_id=user_id,
        currency=currency,
        trigger="provider",
        status="pending",
        contribution_id=None,
        game_round_id=game_round_id,
        evidence={**evidence, "pool_amount": available, "funded_by": "pool"},
    )
    db.session.add(win)
    db.session.flush()
    _pay_locked(pool, win, pay=amount)
    return win


def manual_payout(pool_id: int, user_id: int, *, actor: Any, reason: str) -> JackpotWin:
    """Staff payout of the whole current amount to a player (Admin only, audited)."""
    if not may_pay_manually(actor):
        raise AccessDenied("Only an Admin may pay a jackpot manually")
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required")
    currency = db.session.scalar(select(JackpotPool.currency).where(JackpotPool.id == pool_id))
    if currency is None:
        raise NotFound("Jackpot not found")
    if db.session.get(User, user_id) is None:
        raise ValidationError.field("user_id", "Unknown player")
    with atomic():
        # The player's wallet before the pool: the bet path's order (a pool's currency never
        # changes, so the wallet locked is the one paid).
        wallet.lock(user_id, currency)
        pool = _lock_fresh(JackpotPool, JackpotPool.id == pool_id)
        if _cycle_win(pool) is not None:
            raise Conflict("This jackpot cycle already has a win awaiting payout")
        win = JackpotWin(
            pool_id=pool.id,
            cycle=pool.cycle,
            user_id=user_id,
            currency=pool.currency,
            trigger="manual",
            status="pending",
            contribution_id=None,
            evidence={"manual": True},
            actor_id=actor.id,
            reason=reason.strip(),
        )
        db.session.add(win)
        db.session.flush()
        _pay_locked(pool, win)
        audit.record(
            "jackpot.manual_payout",
            actor=actor,
            target_type="jackpot_pool",
            target_id=pool.id,
            after={"win_id": win.id, "user_id": user_id, "amount": win.amount},
            reason=reason.strip(),
        )
        return win


# --------------------------------------------------------------------------- periodic


def rollup(pool_id: int) -> None:
    """Fold the cycle's new contributions into the pool row (keeps reads O(tail))."""
    with atomic():
        pool = lock_one(JackpotPool, JackpotPool.id == pool_id)
        if pool is None:
            return
        last_id = _max_contribution_id(pool.id)
        if last_id > pool.rolled_through_id:
            pool.rolled_amount += _tail_sum(pool.id, pool.rolled_through_id, last_id)
            pool.rolled_through_id = last_id


def run_periodic() -> dict[str, int]:
    """Pay pending wins, fold contributions, settle must-drops, broadcast amounts."""
    pool_ids = list(
        db.session.scalars(select(JackpotPool.id).where(JackpotPool.status == "active"))
    )
    pending = list(db.session.scalars(select(JackpotWin.id).where(JackpotWin.status == "pending")))
    for win_id in pending:
        award(win_id)
    dropped = 0
    for pool_id in pool_ids:
        rollup(pool_id)
        if check_must_drop(pool_id) is not None or check_drop_deadline(pool_id) is not None:
            dropped += 1
    with atomic():
        for pool in db.session.scalars(select(JackpotPool).where(JackpotPool.id.in_(pool_ids))):
            publish("jackpot.update", pool_json(pool), room=ROOM)
    return {"pools": len(pool_ids), "paid": len(pending), "dropped": dropped}


def tick(pool_ids: list[int]) -> None:
    """After a bet committed: broadcast the new amounts, at most once per pool per
    ``JACKPOT_TICK_SECONDS``; a pool past its must-drop point is settled right away."""
    seconds = int(current_app.config.get("JACKPOT_TICK_SECONDS", 2))
    redis = redis_store.client()
    due = [pid for pid in pool_ids if redis.set(f"jx:jackpot:tick:{pid}", 1, nx=True, ex=seconds)]
    if not due:
        return
    drop: list[int] = []
    with atomic():
        for pool in db.session.scalars(select(JackpotPool).where(JackpotPool.id.in_(due))):
            data = pool_json(pool)
            publish("jackpot.update", data, room=ROOM)
            if pool.drop_point is not None and data["amount_minor"] >= pool.drop_point:
                drop.append(pool.id)
    for pool_id in drop:
        check_must_drop(pool_id)


# --------------------------------------------------------------------------- staff


MONEY_FIELDS = ("seed_amount", "cap_amount", "must_drop_by", "min_bet")
#: Shortest must-drop time window (the periodic job runs every 10 s).
MIN_DROP_WINDOW = 60


def parse_fields(data: dict[str, Any], currency: str) -> dict[str, Any]:
    """Request values (decimal amounts, ``contribution_percent``) → column values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in MONEY_FIELDS:
            if value is None:
                out[key] = None
                continue
            try:
                out[key] = parse_minor(value, currency)
            except MoneyError as exc:
                raise ValidationError.field(key, str(exc)) from None
        elif key == "must_drop_within":
            out["drop_window_seconds"] = _window_seconds(value)
        elif key == "provider_id":
            out["provider_id"] = _provider_id(value)
        elif key == "contribution_percent":
            try:
                bps = to_decimal(value) * 100  # refuses text, NaN and infinities ("1e309")
            except MoneyError as exc:
                raise ValidationError.field(key, str(exc)) from None
            if bps != bps.to_integral_value():
                raise ValidationError.field(key, "At most two decimals (basis points)")
            out["contribution_bps"] = int(bps)
        elif key in EDITABLE:
            out[key] = value
    return out


def _window_seconds(value: Any) -> int | None:
    """``must_drop_within``: seconds (integer) or a duration text ("90m", "24h", "7d")."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValidationError.field("must_drop_within", "Seconds or a duration like 24h")
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*([smhd]?)\s*", str(value))
    if not isinstance(value, int | str) or match is None:
        raise ValidationError.field("must_drop_within", "Seconds or a duration like 24h")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[match.group(2)]
    seconds = int(match.group(1)) * unit
    if not MIN_DROP_WINDOW <= seconds <= 366 * 86_400:
        raise ValidationError.field("must_drop_within", "Between 60 seconds and 366 days")
    return seconds


def _provider_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    ident = parse_row_id(value)
    if ident is None:
        raise ValidationError.field("provider_id", "A provider id")
    if db.session.get(Provider, ident) is None:
        raise ValidationError.field("provider_id", "Unknown provider")
    return ident


def create_pool(data: dict[str, Any], *, actor: Any) -> JackpotPool:
    with atomic():
        currency = normalize_currency(data["currency"])
        fields = parse_fields(data, currency)
        fields.setdefault("seed_amount", 0)
        fields.setdefault("min_bet", 0)
        fields.setdefault("status", "active")
        pool = JackpotPool(currency=currency, **fields)
        _validate(pool)
        _new_drop_point(pool)
        db.session.add(pool)
        db.session.flush()
        audit.record(
            "jackpot.create",
            actor=actor,
            target_type="jackpot_pool",
            target_id=pool.id,
            after=pool_admin_json(pool),
        )
        return pool


def update_pool(pool_id: int, data: dict[str, Any], *, actor: Any) -> JackpotPool:
    with atomic():
        pool = lock_one(JackpotPool, JackpotPool.id == pool_id)
        if pool is None:
            raise NotFound("Jackpot not found")
        before = pool_admin_json(pool)
        data = parse_fields(data, pool.currency)
        redraw = bool({"must_drop_by", "seed_amount", "drop_window_seconds"} & set(data))
        for key, value in data.items():
            if key in EDITABLE:
                setattr(pool, key, value)
        _validate(pool)
        if redraw:
            _new_drop_point(pool)
        db.session.flush()
        audit.record(
            "jackpot.update",
            actor=actor,
            target_type="jackpot_pool",
            target_id=pool.id,
            before=before,
            after=pool_admin_json(pool),
        )
        return pool


def _validate(pool: JackpotPool) -> None:
    if pool.seed_amount is None or pool.seed_amount < 0:
        raise ValidationError.field("seed_amount", "Must be zero or more")
    if not pool.contribution_bps or not 0 < pool.contribution_bps <= 10_000:
        raise ValidationError.field("contribution_percent", "Must be above 0 and at most 100")
    if pool.cap_amount is not None and pool.cap_amount <= pool.seed_amount:
        raise ValidationError.field("cap_amount", "Must be above the seed")
    if pool.must_drop_by is not None and pool.must_drop_by <= pool.seed_amount:
        raise ValidationError.field("must_drop_by", "Must be above the seed")
    if pool.hit_odds is not None and pool.hit_odds < 1:
        raise ValidationError.field("hit_odds", "Must be 1 or more")
    if pool.status not in (None, "active", "paused"):
        raise ValidationError.field("status", "active or paused")


def get_pool(pool_id: int) -> JackpotPool:
    pool = db.session.get(JackpotPool, pool_id)
    if pool is None:
        raise NotFound("Jackpot not found")
    return pool


def active_pools(currency: str | None = None) -> list[JackpotPool]:
    q = select(JackpotPool).where(JackpotPool.status == "active")
    if currency:
        q = q.where(JackpotPool.currency == normalize_currency(currency))
    return list(db.session.scalars(q.order_by(JackpotPool.currency, JackpotPool.id)))


def all_pools() -> list[JackpotPool]:
    return list(db.session.scalars(select(JackpotPool).order_by(JackpotPool.id)))


def wins_of(pool_id: int, limit: int = 20) -> list[JackpotWin]:
    return list(
        db.session.scalars(
            select(JackpotWin)
            .where(JackpotWin.pool_id == pool_id, JackpotWin.status == "paid")
            .order_by(JackpotWin.id.desc())
            .limit(limit)
        )
    )


def recent_wins(limit: int = 20) -> list[JackpotWin]:
    """The newest wins of every pool, pending ones included (staff view)."""
    return list(db.session.scalars(select(JackpotWin).order_by(JackpotWin.id.desc()).limit(limit)))


def reconcile() -> list[str]:
    """Every paid win with money has exactly its ``jackpot_win`` ledger posting, same amount."""
    t = LedgerTransaction
    problems: list[str] = []
    rows = db.session.execute(
        select(
            JackpotWin.id, JackpotWin.amount, JackpotWin.ledger_transaction_id, t.id, t.cash_delta
        )
        .outerjoin(
            t,
            (t.source == SOURCE)
            # ``||`` on every dialect (SQLite before 3.44 has no concat()).
            & (t.idempotency_key == literal("jackpot_win:") + cast(JackpotWin.id, String)),
        )
        .where(JackpotWin.status == "paid")
    ).all()
    for win_id, amount, linked, tx_id, cash in rows:
        if amount and (tx_id is None or tx_id != linked or cash != amount):
            problems.append(f"jackpot win #{win_id}: paid {amount}, ledger {tx_id} {cash}")
    orphans = db.session.scalar(
        select(func.count(t.id)).where(t.type == "jackpot_win", t.source == SOURCE)
    )
    paid = db.session.scalar(
        select(func.count(JackpotWin.id)).where(JackpotWin.status == "paid", JackpotWin.amount > 0)
    )
    if orphans != paid:
        problems.append(f"{orphans} jackpot_win postings for {paid} paid wins")
    return problems


# --------------------------------------------------------------------------- JSON


def pool_json(pool: JackpotPool) -> dict[str, Any]:
    amount = amount_of(pool)
    return {
        "id": pool.id,
        "name": pool.name,
        "tier": pool.tier,
        "group": pool.group_code,
        "currency": pool.currency,
        "amount": format_minor(amount, pool.currency),
        "amount_minor": amount,
        "seed": format_minor(pool.seed_amount, pool.currency),
        "cap": None if pool.cap_amount is None else format_minor(pool.cap_amount, pool.currency),
        "must_drop_by": None
        if pool.must_drop_by is None
        else format_minor(pool.must_drop_by, pool.currency),
        "drop_commitment": pool.drop_commitment,
        "drop_deadline": _iso(pool.drop_deadline),
        "drop_time_commitment": pool.drop_at_commitment,
        "contribution_percent": f"{pool.contribution_bps / 100:.2f}",
        "hit_odds": None if pool.hit_odds is None else f"1/{pool.hit_odds}",
        "min_bet": format_minor(pool.min_bet, pool.currency),
        "game_ids": pool.game_ids,
        "cycle": pool.cycle,
        "status": pool.status,
    }


def pool_admin_json(pool: JackpotPool) -> dict[str, Any]:
    return {
        "id": pool.id,
        "name": pool.name,
        "currency": pool.currency,
        "status": pool.status,
        "seed_amount": pool.seed_amount,
        "contribution_bps": pool.contribution_bps,
        "cap_amount": pool.cap_amount,
        "must_drop_by": pool.must_drop_by,
        "hit_odds": pool.hit_odds,
        "min_bet": pool.min_bet,
        "game_ids": pool.game_ids,
        "tier": pool.tier,
        "group_code": pool.group_code,
        "drop_window_seconds": pool.drop_window_seconds,
        "provider_id": pool.provider_id,
    }


def win_json(win: JackpotWin, *, staff: bool = False) -> dict[str, Any]:
    data = {
        "id": win.id,
        "pool_id": win.pool_id,
        "cycle": win.cycle,
        "currency": win.currency,
        "amount": None if win.amount is None else format_minor(win.amount, win.currency),
        "trigger": win.trigger,
        "status": win.status,
        # The must-drop point and salt are revealed once the cycle is won.
        "evidence": win.evidence if win.status == "paid" else {},
        "transaction_id": win.ledger_transaction_id,
        "won_at": (win.paid_at or win.created_at).isoformat(),
    }
    if staff:
        data.update(user_id=win.user_id, actor_id=win.actor_id, reason=win.reason)
    return data
