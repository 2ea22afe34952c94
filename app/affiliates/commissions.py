"""Agent commissions per closed period, paid into the agent's wallet (ledger ``commission``).

Definitions (minor units, per currency, ledger rows created in ``[period_start, period_end)``
of the players whose ``agent_id`` is the agent):

* **stakes**: ``bet`` rows (negated); **refunds**: ``refund`` rows and ``rollback`` rows that
  credit the player (a stake given back); **wins**: ``win`` and ``jackpot_win`` rows minus
  ``rollback`` rows that debit the player (a win taken back); **bonus cost**: ``bonus_grant``
  minus ``bonus_forfeit``.
* **NGR** = stakes - refunds - wins - bonus cost (the financial report's NGR without payment
  fees, which the operator bears).
* Level 1: ``revenue_share_percent`` of (NGR of the agent's own players + carry-over in).
  Level 2: ``level2_share_percent`` of (NGR of the players of the agent's *direct* sub-agents
  + its own carry-over in). Sub-agents are paid on their own players by their own plan too.
* **Negative carry-over**: when a level's base (NGR + carry in) is negative, nothing is paid for
  that level and the negative base is carried to the agent's next period of that currency
  (stored on the statement as ``carry_out_l1``/``carry_out_l2``, always <= 0); a positive base
  is paid and the carry resets to 0. Amounts are rounded down (minor units).
* **CPA**: ``cpa_amount`` for each of the agent's players whose *first* completed deposit
  (any currency) falls in the period, is in the plan's CPA currency and is at least
  ``cpa_min_deposit``; once per referral ever (``commission_cpa.player_id`` unique).

Invariants:
* One ``CommissionStatement`` per (agent, period, currency), written in the same transaction as
  the ledger postings, under the agent's wallet lock; a re-run finds it and pays nothing.
* Each posting's idempotency key is ``commission:<agent>:<period start>:<currency>:<l1|l2|cpa>``
  (source ``affiliates``), so even a statement lost to a bug could not pay twice.
* Plans are read at run time and copied onto the statement.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, case, func, select

from app.affiliates import program as affiliates
from app.affiliates.models import CommissionCpa, CommissionPlan, CommissionStatement
from app.core import notifications
from app.core.base import utcnow
from app.core.db import atomic, on_commit, page_of
from app.core.errors import ValidationError
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import format_minor
from app.identity.models import AGENT, PLAYER, User
from app.payments.models import PaymentTransaction
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction

SOURCE = "affiliates"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- periods --------------------------------------------------------------------------------


def _period_setting() -> str:
    return str(current_app.config.get("COMMISSION_PERIOD", "monthly")).strip().lower()


def period_containing(at: datetime) -> tuple[datetime, datetime]:
    """The period that contains ``at``: a UTC calendar month, or N days from the Unix epoch."""
    setting = _period_setting()
    if setting == "monthly":
        start = datetime(at.year, at.month, 1, tzinfo=UTC)
        days = calendar.monthrange(at.year, at.month)[1]
        return start, start + timedelta(days=days)
    try:
        length = timedelta(days=int(setting))
    except ValueError:
        raise ValueError(f"COMMISSION_PERIOD must be 'monthly' or days, got {setting!r}") from None
    if length.days < 1:
        raise ValueError("COMMISSION_PERIOD must be at least one day")
    index = (at - EPOCH) // length
    start = EPOCH + index * length
    return start, start + length


def last_closed_period(now: datetime) -> tuple[datetime, datetime]:
    start, _end = period_containing(now)
    return period_containing(start - timedelta(microseconds=1))


# --- figures --------------------------------------------------------------------------------


def _figures(agent_ids_expr, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """Per currency: stakes, refunds, wins, bonus cost, NGR and active players of the players
    whose agent is in ``agent_ids_expr``."""
    lt = LedgerTransaction
    moved = lt.cash_delta + lt.bonus_delta
    players = select(User.id).where(User.agent_id.in_(agent_ids_expr), User.role_id == PLAYER)
    rows = db.session.execute(
        select(
            lt.currency,
            func.sum(case((lt.type == "bet", -moved), else_=0)),
            func.sum(
                case(
                    (lt.type == "refund", moved),
                    (and_(lt.type == "rollback", moved > 0), moved),
                    else_=0,
                )
            ),
            func.sum(
                case(
                    (lt.type.in_(("win", "jackpot_win")), moved),
                    (and_(lt.type == "rollback", moved < 0), moved),
                    else_=0,
                )
            ),
            func.sum(case((lt.type.in_(("bonus_grant", "bonus_forfeit")), moved), else_=0)),
            func.count(func.distinct(lt.user_id)),
        )
        .where(
            lt.user_id.in_(players),
            lt.type.in_(affiliates.NGR_TYPES),
            lt.created_at >= start,
            lt.created_at < end,
        )
        .group_by(lt.currency)
    ).all()
    out = {}
    for cur, stakes, refunds, wins, bonus, n in rows:
        stakes, refunds, wins, bonus = (int(v or 0) for v in (stakes, refunds, wins, bonus))
        out[cur] = {
            "stakes": stakes,
            "refunds": refunds,
            "wins": wins,
            "bonus_cost": bonus,
            "ngr": stakes - refunds - wins - bonus,
            "players": int(n),
        }
    return out


def _new_cpa(agent_id: int, plan: CommissionPlan, start: datetime, end: datetime) -> list[tuple]:
    """(player id, first deposit) of the agent's players who qualify for the CPA this period."""
    if not plan.cpa_amount:
        return []
    pt = PaymentTransaction
    ranked = (
        select(
            pt.user_id,
            pt.currency,
            pt.amount_minor,
            pt.processed_at,
            func.row_number()
            .over(partition_by=pt.user_id, order_by=(pt.processed_at, pt.id))
            .label("n"),
        )
        .join(User, User.id == pt.user_id)
        .where(
            User.agent_id == agent_id,
            User.role_id == PLAYER,
            pt.type == "deposit",
            pt.status == "completed",
            pt.processed_at.is_not(None),
        )
        .subquery()
    )
    paid = select(CommissionCpa.player_id)
    return list(
        db.session.execute(
            select(ranked.c.user_id, ranked.c.amount_minor)
            .where(
                ranked.c.n == 1,
                ranked.c.processed_at >= start,
                ranked.c.processed_at < end,
                ranked.c.currency == plan.cpa_currency,
                ranked.c.amount_minor >= plan.cpa_min_deposit,
                ranked.c.user_id.not_in(paid),
            )
            .order_by(ranked.c.user_id)
        ).all()
    )


def _previous(agent_id: int, currency: str, start: datetime) -> CommissionStatement | None:
    return db.session.scalar(
        select(CommissionStatement)
        .where(
            CommissionStatement.agent_id == agent_id,
            CommissionStatement.currency == currency,
            CommissionStatement.period_start < start,
        )
        .order_by(CommissionStatement.period_start.desc())
        .limit(1)
    )


def _share(base: int, bps: int) -> tuple[int, int]:
    """(commission, carry out) for a level's base = NGR + carry in."""
    if base <= 0:
        return 0, base
    return base * bps // 10_000, 0


# --- the job --------------------------------------------------------------------------------


def run(now: datetime | None = None, *, period_start: datetime | None = None) -> dict[str, Any]:
    """Compute and pay every agent's commission for the last closed period (or the period
    containing ``period_start``). Idempotent: agents already settled for it are skipped."""
    now = now or utcnow()
    if period_start is not None:
        start, end = period_containing(period_start)
        if end > now:
            raise ValidationError.field("period", "The period is not closed yet")
    else:
        start, end = last_closed_period(now)
    report: dict[str, Any] = {
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "statements": 0,
        "already_settled": 0,
        "skipped_inactive": 0,
        "paid": {},
    }
    agent_ids = list(
        db.session.scalars(select(User.id).where(User.role_id == AGENT).order_by(User.id))
    )
    for agent_id in agent_ids:
        for stmt in _settle_agent(agent_id, start, end, report):
            report["statements"] += 1
            cur = stmt["currency"]
            report["paid"][cur] = report["paid"].get(cur, 0) + stmt["total"]
    report["paid"] = {c: format_minor(v, c) for c, v in report["paid"].items()}
    return report


def _settle_agent(
    agent_id: int, start: datetime, end: datetime, report: dict[str, Any]
) -> list[dict[str, Any]]:
    plan = affiliates.plan_for(agent_id)
    if plan is None:
        return []
    agent = db.session.get_one(User, agent_id)  # an id run() just read
    subs = select(User.id).where(User.agent_id == agent_id, User.role_id == AGENT)
    own = _figures(select(User.id).where(User.id == agent_id), start, end)
    level2 = _figures(subs, start, end) if plan.level2_share_bps else {}
    cpa = _new_cpa(agent_id, plan, start, end)
    currencies = set(own) | set(level2) | ({plan.cpa_currency} if cpa else set())
    # Carry-over alone (no play this period) still rolls forward onto a statement.
    currencies |= set(
        db.session.scalars(
            select(func.distinct(CommissionStatement.currency)).where(
                CommissionStatement.agent_id == agent_id,
                CommissionStatement.period_start < start,
            )
        )
    )
    done = []
    for currency in sorted(currencies):
        if agent.status != "active":
            report["skipped_inactive"] += 1
            continue
        stmt = _settle_currency(
            agent_id, plan, currency, start, end,
            own.get(currency), level2.get(currency),
            cpa if currency == plan.cpa_currency else [],
        )  # fmt: skip
        if stmt is None:
            report["already_settled"] += 1
        elif stmt:
            done.append(stmt)
    return done


def _settle_currency(
    agent_id: int,
    plan: CommissionPlan,
    currency: str,
    start: datetime,
    end: datetime,
    own: dict[str, int] | None,
    level2: dict[str, int] | None,
    cpa: list[tuple],
) -> dict[str, Any] | None:
    """One statement and its postings, one transaction. ``None``: already settled; ``{}``:
    nothing to state (no play, no carry, no CPA)."""
    own = own or {"stakes": 0, "refunds": 0, "wins": 0, "bonus_cost": 0, "ngr": 0, "players": 0}
    ngr2 = (level2 or {}).get("ngr", 0)
    with atomic():
        # The wallet lock serializes two runs for the same agent and currency.
        wallet.lock(agent_id, currency)
        exists = db.session.scalar(
            select(CommissionStatement.id).where(
                CommissionStatement.agent_id == agent_id,
                CommissionStatement.period_start == start,
                CommissionStatement.currency == currency,
            )
        )
        if exists is not None:
            return None
        prev = _previous(agent_id, currency, start)
        carry1 = prev.carry_out_l1 if prev else 0
        carry2 = prev.carry_out_l2 if prev else 0
        if not own["players"] and not ngr2 and not carry1 and not carry2 and not cpa:
            return {}
        paid1, out1 = _share(own["ngr"] + carry1, plan.revenue_share_bps)
        paid2, out2 = _share(ngr2 + carry2, plan.level2_share_bps)
        stmt = CommissionStatement(
            agent_id=agent_id,
            period_start=start,
            period_end=end,
            currency=currency,
            players=own["players"],
            stakes=own["stakes"],
            wins=own["wins"],
            refunds=own["refunds"],
            bonus_cost=own["bonus_cost"],
            ngr=own["ngr"],
            carry_in_l1=carry1,
            commission_l1=paid1,
            carry_out_l1=out1,
            ngr_l2=ngr2,
            carry_in_l2=carry2,
            commission_l2=paid2,
            carry_out_l2=out2,
            cpa_count=len(cpa),
            cpa_total=len(cpa) * plan.cpa_amount,
            plan=affiliates.plan_json(plan),
        )
        db.session.add(stmt)
        db.session.flush()  # the statement id is the ledger rows' reference
        refs = {}
        key = f"commission:{agent_id}:{start.date().isoformat()}:{currency}"
        label = f"{start.date().isoformat()}..{end.date().isoformat()}"
        for level, amount, what in (
            ("l1", paid1, "revenue share"),
            ("l2", paid2, "sub-agent revenue share"),
            ("cpa", stmt.cpa_total, f"CPA x{len(cpa)}"),
        ):
            if amount <= 0:
                continue
            posting = wallet.post(
                agent_id,
                currency,
                "commission",
                cash_delta=amount,
                source=SOURCE,
                idempotency_key=f"{key}:{level}",
                reference_type="commission_statement",
                reference_id=stmt.id,
                description=f"Commission {label}: {what}",
            )
            refs[level] = posting.transaction_id
        stmt.ledger_refs = refs or None
        for player_id, first_deposit in cpa:
            db.session.add(
                CommissionCpa(
                    player_id=player_id,
                    agent_id=agent_id,
                    statement_id=stmt.id,
                    amount=plan.cpa_amount,
                    currency=currency,
                    first_deposit=first_deposit,
                )
            )
        db.session.flush()
        total = stmt.total
        if total > 0:
            sid = stmt.id
            on_commit(lambda: _notify(agent_id, sid))
        return {"statement_id": stmt.id, "currency": currency, "total": total}


def _notify(agent_id: int, statement_id: int) -> None:
    with atomic():
        stmt = db.session.get_one(CommissionStatement, statement_id)  # committed before this
        notifications.notify(
            agent_id,
            "commission",
            Msg("Commission paid"),
            Msg(
                "%(amount)s %(currency)s commission for %(start)s to %(end)s",
                amount=format_minor(stmt.total, stmt.currency),
                currency=stmt.currency,
                start=stmt.period_start.date().isoformat(),
                end=stmt.period_end.date().isoformat(),
            ),
            data={"statement_id": statement_id},
            dedupe_key=f"commission:{statement_id}",
        )


# --- reads ----------------------------------------------------------------------------------


def statements(
    agent_id: int | None, page: int, limit: int
) -> tuple[list[CommissionStatement], int]:
    query = select(CommissionStatement)
    if agent_id is not None:
        query = query.where(CommissionStatement.agent_id == agent_id)
    return page_of(
        query,
        CommissionStatement.period_start.desc(),
        CommissionStatement.id.desc(),
        page=page,
        limit=limit,
    )


def statement_json(s: CommissionStatement) -> dict[str, Any]:
    cur = s.currency

    def m(v: int) -> str:
        return format_minor(v, cur)

    return {
        "id": s.id,
        "agent_id": s.agent_id,
        "period_start": s.period_start.isoformat(),
        "period_end": s.period_end.isoformat(),
        "currency": cur,
        "players": s.players,
        "stakes": m(s.stakes),
        "refunds": m(s.refunds),
        "wins": m(s.wins),
        "bonus_cost": m(s.bonus_cost),
        "ngr": m(s.ngr),
        "carry_in": m(s.carry_in_l1),
        "commission_l1": m(s.commission_l1),
        "carry_out": m(s.carry_out_l1),
        "ngr_level2": m(s.ngr_l2),
        "carry_in_level2": m(s.carry_in_l2),
        "commission_l2": m(s.commission_l2),
        "carry_out_level2": m(s.carry_out_l2),
        "cpa_count": s.cpa_count,
        "cpa_total": m(s.cpa_total),
        "total": m(s.total),
        "plan": s.plan,
        "created_at": s.created_at.isoformat(),
    }
