"""The player's account statement (RTS 1B: at least 3 months of self-serve history).

Built from the wallet ledger, the one record of every movement: opening and closing balances
are the ``balance_after`` of the last movement before each bound, so the statement always
adds up (opening + sum of movements = closing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.core.extensions import db
from app.core.money import format_minor
from app.identity.models import User
from app.wallet.models import LedgerTransaction as Ltx

MAX_ENTRIES = 5000


def statement(
    user: User, since: datetime, until: datetime, *, currency: str | None = None
) -> dict[str, Any]:
    currency = (currency or user.currency).upper()

    def last_before(moment: datetime):
        return db.session.execute(
            select(Ltx.balance_after, Ltx.bonus_balance_after)
            .where(Ltx.user_id == user.id, Ltx.currency == currency, Ltx.created_at < moment)
            .order_by(Ltx.created_at.desc(), Ltx.id.desc())
            .limit(1)
        ).one_or_none()

    opening, closing = last_before(since), last_before(until)
    rows = db.session.scalars(
        select(Ltx)
        .where(
            Ltx.user_id == user.id,
            Ltx.currency == currency,
            Ltx.created_at >= since,
            Ltx.created_at < until,
        )
        .order_by(Ltx.created_at, Ltx.id)
        .limit(MAX_ENTRIES)
    ).all()
    totals: dict[str, int] = {}
    entries = []
    for tx in rows:
        moved = tx.cash_delta + tx.bonus_delta
        totals[tx.type] = totals.get(tx.type, 0) + moved
        entries.append(
            {
                "id": tx.id,
                "date": tx.created_at.isoformat(),
                "type": tx.type,
                "description": tx.description,
                "amount": format_minor(moved, currency),
                "cash": format_minor(tx.cash_delta, currency),
                "bonus": format_minor(tx.bonus_delta, currency),
                "held": format_minor(tx.held_delta, currency),
                "balance_after": format_minor(tx.balance_after, currency),
                "bonus_balance_after": format_minor(tx.bonus_balance_after, currency),
                "reference": f"{tx.reference_type}:{tx.reference_id}"
                if tx.reference_type
                else None,
            }
        )

    def money(row) -> dict[str, str]:
        cash, bonus = (0, 0) if row is None else (row[0], row[1])
        return {"cash": format_minor(cash, currency), "bonus": format_minor(bonus, currency)}

    return {
        "currency": currency,
        "opening_balance": money(opening),
        "closing_balance": money(closing),
        "totals": {k: format_minor(v, currency) for k, v in sorted(totals.items())},
        "entries": entries,
        "truncated": len(rows) >= MAX_ENTRIES,
    }
