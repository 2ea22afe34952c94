"""Referral and affiliate statistics from the links made at registration.

A player registered with someone's ``ref_code`` has ``referred_by_id`` set to them, and
``agent_id`` too when the referrer is an Agent. A referral is **qualified** once they made a
completed deposit. Figures are read from the payment and round tables and the ledger; this
module writes nothing. Commissions shown are what the ledger holds (type ``commission``):
the commission job itself is not built yet (docs/engagement.md).

A referrer sees their referrals' usernames, join dates and activity, never e-mails or
balances.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select

from app.extensions import db
from app.models.games import GameRound
from app.models.payments import PaymentTransaction
from app.models.user import AGENT, User
from app.models.wallet import LedgerTransaction
from app.money import format_minor


def _mine(user: User):
    # Agents own the players attached to them as agent; everyone owns whom they referred.
    if user.role_id == AGENT:
        return or_(User.agent_id == user.id, User.referred_by_id == user.id)
    return User.referred_by_id == user.id


def _by_currency(rows) -> list[dict[str, Any]]:
    return [{"currency": cur, "amount": format_minor(int(total or 0), cur)} for cur, total in rows]


def stats(user: User) -> dict[str, Any]:
    referred = select(User.id).where(_mine(user)).scalar_subquery()
    total = db.session.scalar(select(func.count(User.id)).where(_mine(user)))
    deposits = db.session.execute(
        select(PaymentTransaction.currency, func.sum(PaymentTransaction.amount_minor))
        .where(
            PaymentTransaction.user_id.in_(referred),
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
        )
        .group_by(PaymentTransaction.currency)
    ).all()
    qualified = db.session.scalar(
        select(func.count(func.distinct(PaymentTransaction.user_id))).where(
            PaymentTransaction.user_id.in_(referred),
            PaymentTransaction.type == "deposit",
            PaymentTransaction.status == "completed",
        )
    )
    play = db.session.execute(
        select(
            GameRound.currency,
            func.sum(GameRound.total_bet - GameRound.total_refund),
            func.sum(GameRound.total_win),
        )
        .where(GameRound.user_id.in_(referred))
        .group_by(GameRound.currency)
    ).all()
    commissions = db.session.execute(
        select(LedgerTransaction.currency, func.sum(LedgerTransaction.cash_delta))
        .where(LedgerTransaction.user_id == user.id, LedgerTransaction.type == "commission")
        .group_by(LedgerTransaction.currency)
    ).all()
    base = current_app.config.get("PUBLIC_URL", "")
    return {
        "referral_code": user.referral_code,
        "referral_link": f"{base}/register?ref={user.referral_code}"
        if user.referral_code
        else None,
        "is_agent": user.role_id == AGENT,
        "referrals": total,
        "qualified_referrals": qualified,
        "deposits": _by_currency(deposits),
        "wagered": _by_currency((cur, bet) for cur, bet, _win in play),
        "ggr": _by_currency((cur, (bet or 0) - (win or 0)) for cur, bet, win in play),
        "commissions": _by_currency(commissions),
    }


def referrals(user: User, page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    total = db.session.scalar(select(func.count(User.id)).where(_mine(user)))
    dep = (
        select(
            PaymentTransaction.user_id.label("uid"),
            func.count(PaymentTransaction.id).label("n"),
            func.min(PaymentTransaction.processed_at).label("first_at"),
        )
        .where(PaymentTransaction.type == "deposit", PaymentTransaction.status == "completed")
        .group_by(PaymentTransaction.user_id)
        .subquery()
    )
    rows = db.session.execute(
        select(User, dep.c.n, dep.c.first_at)
        .outerjoin(dep, and_(dep.c.uid == User.id))
        .where(_mine(user))
        .order_by(User.created_at.desc(), User.id.desc())
        .offset((page - 1) * limit)
        .limit(limit)
    ).all()
    out = [
        {
            "id": u.id,
            "username": u.username,
            "country": u.country,
            "joined_at": u.created_at.isoformat(),
            "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
            "qualified": bool(n),
            "deposits_count": int(n or 0),
            "first_deposit_at": first_at.isoformat() if first_at else None,
            "via": "agent" if u.agent_id == user.id else "referral",
        }
        for u, n, first_at in rows
    ]
    return out, total
