"""Loyalty points and levels.

Invariants:
* Points are not money: they never touch a wallet or the ledger and cannot be withdrawn.
* A stake earns ``floor(cash stake x LOYALTY_POINTS_PER_UNIT / 10^exponent)`` points (bonus
  money earns none: points must not be farmed with the casino's own bonus). They are written by
  the ``play_events`` listener inside the callback transaction, so they exist exactly when the
  stake does; a replayed callback never reaches the listener.
* A refund or rollback of a stake takes back exactly the points that stake earned, once
  (``LoyaltyEvent.reverses_event_id`` is unique).
* ``LoyaltyAccount.points`` = sum of the player's events; the level is the highest
  ``LoyaltyLevel`` whose ``min_points`` the points reach (a reversal can lower it).
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import insert, literal_column, select, update

from app.bonus.models import LoyaltyAccount, LoyaltyEvent, LoyaltyLevel
from app.core import notifications
from app.core.base import utcnow
from app.core.db import dialect_insert, page_of, table_of
from app.core.extensions import db
from app.core.money import exponent, format_minor
from app.play import events as play_events

#: The seeded level table: (code, name, min points, description).
LEVELS: tuple[tuple[str, str, int, str], ...] = (
    ("bronze", "Bronze", 0, "Every player starts here"),
    ("silver", "Silver", 1_000, "Regular player"),
    ("gold", "Gold", 10_000, "Valued player"),
    ("platinum", "Platinum", 50_000, "Our best players"),
)


def ensure_levels() -> None:
    """Write ``LEVELS`` to the table (caller owns the transaction); edits made by an operator
    to a seeded level's thresholds are overwritten, extra levels are kept."""
    for code, name, min_points, description in LEVELS:
        row = db.session.get(LoyaltyLevel, code)
        if row is None:
            db.session.add(
                LoyaltyLevel(code=code, name=name, min_points=min_points, description=description)
            )
        else:
            row.name, row.min_points, row.description = name, min_points, description
    db.session.flush()


def levels() -> list[LoyaltyLevel]:
    return list(db.session.scalars(select(LoyaltyLevel).order_by(LoyaltyLevel.min_points)))


def points_for(cash_stake: int, currency: str) -> int:
    rate = int(current_app.config.get("LOYALTY_POINTS_PER_UNIT", 1))
    if cash_stake <= 0 or rate <= 0:
        return 0
    return cash_stake * rate // 10 ** exponent(currency)


def _move(user_id: int, delta: int) -> None:
    """Add ``delta`` to the account (created on first use) and keep its level in step."""
    accounts = table_of(LoyaltyAccount)
    a = accounts.c
    if delta > 0:
        # One round trip on the bet path: the upsert creates or locks and adds.
        stmt = dialect_insert(accounts).values(user_id=user_id, points=delta, updated_at=utcnow())
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={
                "points": a.points + stmt.excluded.points,
                "updated_at": stmt.excluded.updated_at,
            },
        )
    else:
        # A reversal follows a wager, so the account exists. (Not an upsert: PostgreSQL checks
        # the proposed row, negative here, against the CHECK before it sees the conflict.)
        stmt = (
            update(accounts)
            .where(a.user_id == user_id)
            .values(points=a.points + delta, updated_at=utcnow())
        )
    # The level the new points reach, read by the same statement (no second round trip). The
    # new row's points are named as text: SQLAlchemy does not correlate a subquery in
    # RETURNING with the target table (it would read every account's old points).
    reached = (
        select(LoyaltyLevel.code)
        .where(LoyaltyLevel.min_points <= literal_column(f"{accounts.name}.points"))
        .order_by(LoyaltyLevel.min_points.desc())
        .limit(1)
        .scalar_subquery()
    )
    row = db.session.execute(stmt.returning(a.points, a.level_code, reached.label("reached"))).one()
    level = row.reached
    if level != row.level_code:
        db.session.execute(
            update(accounts)
            .where(a.user_id == user_id)
            .values(level_code=level, level_reached_at=utcnow())
        )
        if delta > 0 and level is not None:
            _level_up_notice(user_id, level)
    # The ORM may hold a stale copy of this row (profile read earlier in the request).
    cached = db.session.identity_map.get(db.session.identity_key(LoyaltyAccount, (user_id,)))
    if cached is not None:
        db.session.expire(cached)


def _level_up_notice(user_id: int, code: str) -> None:
    level = db.session.get_one(LoyaltyLevel, code)
    if level.min_points == 0:
        return  # the starting level is not news
    name = level.name
    notifications.notify(
        user_id,
        "loyalty",
        f"Welcome to {name}",
        f"You reached the {name} loyalty level.",
        data={"level": code},
        dedupe_key=f"loyalty-level:{user_id}:{code}",
    )


_WAGER_EVENT = insert(table_of(LoyaltyEvent))


def on_play(event: play_events.PlayEvent) -> None:
    """``play_events`` listener (callback transaction)."""
    if event.kind == "bet":
        points = points_for(event.cash_part, event.currency)
        if points <= 0:
            return
        # A Core insert built once (no unit-of-work flush on the bet path).
        db.session.execute(
            _WAGER_EVENT,
            {
                "user_id": event.user_id,
                "kind": "wager",
                "points": points,
                "currency": event.currency,
                "amount": event.cash_part,
                "provider_transaction_id": event.transaction_id,
                "created_at": utcnow(),
            },
        )
        _move(event.user_id, points)
    elif event.kind in ("refund", "rollback") and event.reverses == "bet":
        _reverse(event)


def _reverse(event: play_events.PlayEvent) -> None:
    # The undone stake is named by the event itself (``reverses_transaction_id``: our claim of
    # the bet), for a provider's refund/rollback and a stale-round refund alike, the same key
    # the jackpot and bonus listeners use.
    if event.reverses_transaction_id is None:
        return
    wager = db.session.execute(
        select(LoyaltyEvent).where(
            LoyaltyEvent.provider_transaction_id == event.reverses_transaction_id,
            LoyaltyEvent.kind == "wager",
            LoyaltyEvent.user_id == event.user_id,
        )
    ).scalar_one_or_none()
    if wager is None:
        return
    taken = db.session.scalar(
        select(LoyaltyEvent.id).where(LoyaltyEvent.reverses_event_id == wager.id)
    )
    if taken is not None:
        return
    db.session.add(
        LoyaltyEvent(
            user_id=event.user_id,
            kind="reversal",
            points=-wager.points,
            currency=event.currency,
            amount=wager.amount,
            provider_transaction_id=event.transaction_id,
            reverses_event_id=wager.id,
        )
    )
    db.session.flush()
    _move(event.user_id, -wager.points)


# --- reads ----------------------------------------------------------------------------------


def progress(user_id: int) -> dict[str, Any]:
    """Points, level, next level and progress towards it (percent of the gap, 0-100)."""
    account = db.session.get(LoyaltyAccount, user_id)
    points = account.points if account else 0
    table = levels()
    current = None
    following = None
    for lv in table:
        if lv.min_points <= points:
            current = lv
        elif following is None:
            following = lv
    if following is None:
        percent = 100 if current is not None else 0
    else:
        floor = current.min_points if current is not None else 0
        span = following.min_points - floor
        percent = min(100, (points - floor) * 100 // span) if span > 0 else 0
    return {
        "points": points,
        "level": _level_json(current),
        "next_level": _level_json(following),
        "points_to_next_level": following.min_points - points if following else None,
        "progress_percent": percent,
    }


def _level_json(lv: LoyaltyLevel | None) -> dict[str, Any] | None:
    if lv is None:
        return None
    return {"code": lv.code, "name": lv.name, "min_points": lv.min_points}


def history(user_id: int, page: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    rows, total = page_of(
        select(LoyaltyEvent).where(LoyaltyEvent.user_id == user_id),
        LoyaltyEvent.created_at.desc(),
        LoyaltyEvent.id.desc(),
        page=page,
        limit=limit,
    )
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "points": e.points,
            "wagered": format_minor(e.amount, e.currency),
            "currency": e.currency,
            "created_at": e.created_at.isoformat(),
        }
        for e in rows
    ], total


def summary(user_id: int, page: int = 1, limit: int = 20) -> dict[str, Any]:
    rows, total = history(user_id, page, limit)
    return progress(user_id) | {
        "levels": [_level_json(lv) for lv in levels()],
        "points_per_unit": int(current_app.config.get("LOYALTY_POINTS_PER_UNIT", 1)),
        "history": rows,
        "history_total": total,
    }
