"""Game rounds: the bet history players and staff see, and settling rounds nobody finished.

Invariants:
* A round's totals change only under its player's wallet lock (see
  ``app.play.callbacks.actions``), and so
  does stale settlement: it claims the round with ``UPDATE ... WHERE status='open'`` so a
  round the provider finishes meanwhile is left alone.
* Stale settlement per provider policy: ``refund`` gives back every stake of a round that
  never got a result (no win callback at all) and cancels it; rounds with a result, and
  providers with policy ``close``, are closed as they stand. Each refund is a ledger row
  whose idempotency key derives from the bet, so a late provider refund of the same bet
  moves no money; each settled round is audited.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import aliased

from app.core import audit
from app.core.base import utcnow
from app.core.db import atomic, dialect_insert
from app.core.extensions import db
from app.core.money import format_minor
from app.play import events as play_events
from app.play.models import ROUND_STATES, Game, GameRound, Provider, ProviderTransaction
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction

#: API status ← round status (the guide's bet statuses).
API_STATUS = {"open": "pending", "closed": "completed", "cancelled": "cancelled"}
ROUND_STATUS = {v: k for k, v in API_STATUS.items()}


@dataclass
class BetFilter:
    user_id: int | None = None
    game_id: int | None = None
    provider: str | None = None
    status: str | None = None
    outcome: str | None = None
    currency: str | None = None
    date_from: Any = None
    date_to: Any = None


def _bet_query(f: BetFilter):
    r = GameRound
    stmt = (
        select(r, Game.name, Provider.code, Provider.name)
        .join(Game, Game.id == r.game_id)
        .join(Provider, Provider.id == r.provider_id)
    )
    if f.user_id is not None:
        stmt = stmt.where(r.user_id == f.user_id)
    if f.game_id is not None:
        stmt = stmt.where(r.game_id == f.game_id)
    if f.provider:
        stmt = stmt.where(Provider.code == f.provider.strip().lower())
    if f.status:
        stmt = stmt.where(r.status == ROUND_STATUS.get(f.status, f.status))
    if f.outcome == "win":
        stmt = stmt.where(r.total_win > r.total_bet - r.total_refund)
    elif f.outcome == "lose":
        stmt = stmt.where(r.total_win <= r.total_bet - r.total_refund, r.status != "open")
    if f.currency:
        stmt = stmt.where(r.currency == f.currency)
    if f.date_from is not None:
        stmt = stmt.where(r.created_at >= f.date_from)
    if f.date_to is not None:
        stmt = stmt.where(r.created_at < f.date_to)
    return stmt


def bets(f: BetFilter, *, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    stmt = _bet_query(f)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.execute(
        stmt.order_by(GameRound.created_at.desc(), GameRound.id.desc()).offset(offset).limit(limit)
    ).all()
    return [bet_json(r, game, code, name) for r, game, code, name in rows], int(total or 0)


def bet_json(r: GameRound, game_name: str, provider_code: str, provider_name: str) -> dict:
    c = r.currency
    stake = r.total_bet - r.total_refund
    outcome = None if r.status == "open" else "win" if r.total_win > stake else "lose"
    return {
        "id": r.id,
        "round_id": r.external_round_id,
        "user_id": r.user_id,
        "game_id": r.game_id,
        "game_name": game_name,
        "provider": provider_name,
        "provider_code": provider_code,
        "currency": c,
        "bet_amount": format_minor(r.total_bet, c),
        "win_amount": format_minor(r.total_win, c),
        "refunded_amount": format_minor(r.total_refund, c),
        "net": format_minor(r.total_win - stake, c),
        "bets_count": r.bets_count,
        "status": API_STATUS[r.status],
        "outcome": outcome,
        "created_at": r.created_at,
        "closed_at": r.closed_at,
    }


def bet_summary(f: BetFilter) -> dict[str, dict[str, Any]]:
    """Per currency: rounds, stakes (net of refunds), wins and GGR (stakes - wins)."""
    sub = _bet_query(f).subquery()
    rows = db.session.execute(
        select(
            sub.c.currency,
            func.count(),
            func.coalesce(func.sum(sub.c.total_bet - sub.c.total_refund), 0),
            func.coalesce(func.sum(sub.c.total_win), 0),
        ).group_by(sub.c.currency)
    ).all()
    return {
        c: {
            "rounds": n,
            "total_bet": format_minor(int(bet), c),
            "total_win": format_minor(int(win), c),
            "ggr": format_minor(int(bet) - int(win), c),
        }
        for c, n, bet, win in rows
    }


# --- stale rounds ----------------------------------------------------------------------------


@dataclass
class SettleReport:
    rounds: int = 0
    refunded_bets: int = 0
    closed: int = 0
    cancelled: int = 0
    refunded: dict[str, int] = field(default_factory=dict)


def settle_stale(older_than: timedelta, *, actor: Any = None, batch: int = 500) -> SettleReport:
    """Settle rounds with no activity for ``older_than`` (each round in its own transaction)."""
    cutoff = utcnow() - older_than
    report = SettleReport()
    candidates = (
        db.session.execute(
            select(GameRound.id)
            .where(GameRound.status == "open", GameRound.updated_at < cutoff)
            .order_by(GameRound.id)
            .limit(batch)
        )
        .scalars()
        .all()
    )
    for round_id in candidates:
        _settle_one(round_id, cutoff, actor, report)
    return report


def _settle_one(round_id: int, cutoff, actor: Any, report: SettleReport) -> None:
    with atomic():
        rnd = db.session.get_one(GameRound, round_id)
        provider = db.session.get_one(Provider, rnd.provider_id)
        w = wallet.lock(rnd.user_id, rnd.currency)
        ptx = ProviderTransaction
        has_result = db.session.scalar(
            select(
                exists().where(
                    ptx.provider_id == rnd.provider_id,
                    ptx.external_round_id == rnd.external_round_id,
                    ptx.action == "win",
                    ptx.state != "tombstone",
                )
            )
        )
        refund = provider.stale_round_policy == "refund" and not has_result
        to = "cancelled" if refund else "closed"
        claimed = db.session.execute(
            update(GameRound)
            .where(
                GameRound.id == rnd.id,
                GameRound.status.in_(ROUND_STATES.sources(to)),
                GameRound.updated_at < cutoff,
            )
            .values(status=to, closed_at=utcnow(), updated_at=utcnow())
            .returning(GameRound.id)
        ).scalar_one_or_none()
        if claimed is None:
            return  # the provider touched it meanwhile
        refunded_total = 0
        refunded_bets = 0
        if refund:
            reversal = aliased(ProviderTransaction)
            open_bets = db.session.execute(
                select(ptx.id, ptx.external_id, ptx.amount, ptx.currency)
                .where(
                    ptx.provider_id == rnd.provider_id,
                    ptx.external_round_id == rnd.external_round_id,
                    ptx.action == "bet",
                    ptx.state == "applied",
                    ptx.amount > 0,
                    ~exists().where(
                        and_(
                            reversal.provider_id == ptx.provider_id,
                            reversal.reference_external_id == ptx.external_id,
                            reversal.action.in_(("refund", "rollback")),
                            reversal.state == "applied",
                        )
                    ),
                )
                .order_by(ptx.id)
            ).all()
            source = f"provider:{provider.code}"
            for bet in open_bets:
                key = f"jx-stale:{bet.external_id}"
                claim = db.session.execute(
                    dialect_insert(ProviderTransaction)
                    .values(
                        provider_id=rnd.provider_id,
                        external_id=key,
                        action="refund",
                        state="applied",
                        user_id=rnd.user_id,
                        external_round_id=rnd.external_round_id,
                        reference_external_id=bet.external_id,
                        currency=bet.currency,
                        amount=bet.amount,
                        fingerprint=hashlib.sha256(key.encode()).hexdigest(),
                        created_at=utcnow(),
                    )
                    .on_conflict_do_nothing(index_elements=["provider_id", "external_id"])
                    .returning(ProviderTransaction.id)
                ).scalar_one_or_none()
                if claim is None:
                    continue
                original = db.session.execute(
                    select(LedgerTransaction.cash_delta, LedgerTransaction.bonus_delta).where(
                        LedgerTransaction.source == source,
                        LedgerTransaction.idempotency_key == bet.external_id,
                    )
                ).one()
                posting = wallet.post(
                    rnd.user_id,
                    rnd.currency,
                    "refund",
                    cash_delta=-original.cash_delta,
                    bonus_delta=-original.bonus_delta,
                    source=source,
                    idempotency_key=key,
                    reference_type="provider_transaction",
                    reference_id=claim,
                    description="Stake refunded: the provider never finished the round",
                    locked=w,
                )
                w = wallet.LockedWallet(
                    w.id,
                    w.user_id,
                    w.currency,
                    posting.balance,
                    posting.bonus_balance,
                    w.held_balance,
                )
                # A stake given back like a provider's refund (same event, naming the bet's
                # claim): bonus wagering, tournament scores, jackpot contributions and loyalty
                # points that followed it are taken back too.
                play_events.emit(
                    play_events.PlayEvent(
                        "refund", rnd.user_id, rnd.currency, bet.amount,
                        abs(original.cash_delta), abs(original.bonus_delta),
                        rnd.provider_id, rnd.game_id, rnd.external_round_id, claim,
                        reverses="bet", reverses_transaction_id=bet.id,
                    )
                )  # fmt: skip
                refunded_total += bet.amount
                refunded_bets += 1
            if refunded_total:
                db.session.execute(
                    update(GameRound)
                    .where(GameRound.id == rnd.id)
                    .values(total_refund=GameRound.total_refund + refunded_total)
                )
        audit.record(
            "round.settle_stale",
            actor=actor,
            target_type="game_round",
            target_id=rnd.id,
            before={"status": "open", "last_activity": rnd.updated_at},
            after={
                "status": "cancelled" if refund else "closed",
                "policy": provider.stale_round_policy,
                "refunded_bets": refunded_bets,
                "refunded": format_minor(refunded_total, rnd.currency),
                "currency": rnd.currency,
            },
            reason="round left unfinished by the provider",
        )
    report.rounds += 1
    report.refunded_bets += refunded_bets
    if refund:
        report.cancelled += 1
        report.refunded[rnd.currency] = report.refunded.get(rnd.currency, 0) + refunded_total
    else:
        report.closed += 1
