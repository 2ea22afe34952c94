"""Loyalty points and levels.

Invariants:
* Points are not money: they never touch a wallet or the ledger and cannot be withdrawn.
* A stake earns ``floor(cash stake x LOYALTY_POINTS_PER_UNIT / 10^exponent)`` points (bonus
  money earns none: points must not be farmed with the casino's own bonus). Points move no
  money, so they are written by an after-commit ``play_events`` listener, in their own
  transaction once the stake committed (``PLAY_AFTER_COMMIT``), never inside the callback's.
* Once per stake: the wager event is keyed by the bet's claim id
  (``LoyaltyEvent.provider_transaction_id`` is unique, inserted ``ON CONFLICT DO NOTHING``), so
  a second run of the same event (the after-commit queue and the sweep both meeting it) adds
  nothing; a replayed callback never reaches the listener at all.
* A refund or rollback of a stake takes back exactly the points that stake earned, once
  (``LoyaltyEvent.reverses_event_id`` and the reversal's claim id are unique). A reversal that
  runs before its bet's wager event was written writes that wager event first (from the bet's
  ledger row), so the bet's late run finds it done and the points net to zero.
* Crash-safe: :func:`sweep` (periodic) writes the wager events and reversals of recent
  stakes and refunds the after-commit queue did not reach (a process killed between commit
  and queue), by the same idempotent path.
* ``LoyaltyAccount.points`` = sum of the player's events (the spendable balance);
  ``redeemed_points`` = points spent on rewards (``bonus.redemption``). The level is the highest
  ``LoyaltyLevel`` whose ``min_points`` the points *earned* (``points + redeemed_points``)
  reach: a reversal can lower it, spending points never does.
* A reversal never takes more than the spendable balance: points of a stake that were already
  spent when the stake is refunded stay spent (the reversal event records what it took).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import (
    BigInteger,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from app.bonus.models import LoyaltyAccount, LoyaltyEvent, LoyaltyLevel
from app.core import notifications, settings
from app.core.base import UTCDateTime, utcnow
from app.core.db import atomic, core_execute, dialect_insert, page_of, table_of
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import exponent, format_minor
from app.play import events as play_events
from app.play.models import ProviderTransaction
from app.wallet.models import LedgerTransaction

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
    row = db.session.execute(stmt.returning(*_returned_level())).one()
    _follow_level(user_id, row, raised=delta > 0)


def _returned_level() -> tuple[Any, ...]:
    """``RETURNING`` columns of an account write: the user, the level it holds and the level
    its new points reach, read by the same statement (no second round trip). The new row's
    points are named as text: SQLAlchemy does not correlate a subquery in RETURNING with the
    target table (it would read every account's old points)."""
    accounts = table_of(LoyaltyAccount)
    earned: Any = literal_column(f"{accounts.name}.points + {accounts.name}.redeemed_points")
    reached = (
        select(LoyaltyLevel.code)
        .where(LoyaltyLevel.min_points <= earned)
        .order_by(LoyaltyLevel.min_points.desc())
        .limit(1)
        .scalar_subquery()
    )
    return accounts.c.user_id, accounts.c.level_code, reached.label("reached")


def _follow_level(user_id: int, row: Any, *, raised: bool) -> None:
    """Keep the account's level in step with what its write returned (``_returned_level``)."""
    accounts = table_of(LoyaltyAccount)
    level = row.reached
    if level != row.level_code:
        db.session.execute(
            update(accounts)
            .where(accounts.c.user_id == user_id)
            .values(level_code=level, level_reached_at=utcnow())
        )
        if raised and level is not None:
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
        Msg("Welcome to %(name)s", name=name),
        Msg("You reached the %(name)s loyalty level.", name=name),
        data={"level": code},
        dedupe_key=f"loyalty-level:{user_id}:{code}",
    )


def on_play(event: play_events.PlayEvent) -> None:
    """After-commit ``play_events`` listener (its own transaction; idempotent by claim id)."""
    if event.kind == "bet":
        _wager(event.user_id, event.currency, event.cash_part, event.transaction_id)
    elif event.kind in ("refund", "rollback") and event.reverses == "bet":
        _reverse(event)


def on_play_batch(events: list[play_events.PlayEvent]) -> None:
    """``on_play`` over ``events`` in order, in the caller's transaction: runs of bets are
    written by one statement (PostgreSQL: the wager events, and each player's points summed
    into their account); a reversal first flushes the bets before it."""
    if db.session.get_bind().dialect.name != "postgresql":
        for event in events:
            on_play(event)
        return
    bets: list[play_events.PlayEvent] = []
    for event in events:
        if event.kind == "bet":
            bets.append(event)
            continue
        _wager_many(bets)
        bets = []
        on_play(event)
    _wager_many(bets)


def _wager_many(bets: list[play_events.PlayEvent]) -> None:
    """``_wager`` for each of ``bets`` in one statement (PostgreSQL): the wager events inserted
    once per claim, then the points each player's new events earned added to their account
    (one row per player, in player order: two batches lock accounts in the same order). The
    bets arrive as arrays, so the statement is the same for any batch (compiled and prepared
    once)."""
    earning = [(e, points) for e in bets if (points := points_for(e.cash_part, e.currency)) > 0]
    if not earning:
        return
    params = {
        "user_ids": [e.user_id for e, _ in earning],
        "points": [points for _, points in earning],
        "currencies": [e.currency for e, _ in earning],
        "amounts": [e.cash_part for e, _ in earning],
        "claims": [e.transaction_id for e, _ in earning],
        "now": utcnow(),
    }
    for row in core_execute(_wager_many_statement(), params):
        _follow_level(row.user_id, row, raised=True)


@cache
def _wager_many_statement() -> Any:
    from sqlalchemy.dialects.postgresql import insert

    events, accounts = table_of(LoyaltyEvent), table_of(LoyaltyAccount)
    now = bindparam("now", type_=UTCDateTime())
    batch = (
        func.unnest(
            bindparam("user_ids", type_=ARRAY(BigInteger)),
            bindparam("points", type_=ARRAY(BigInteger)),
            bindparam("currencies", type_=ARRAY(String)),
            bindparam("amounts", type_=ARRAY(BigInteger)),
            bindparam("claims", type_=ARRAY(BigInteger)),
        )
        .table_valued("user_id", "points", "currency", "amount", "claim")
        .render_derived()
    )
    inserted = (
        insert(events)
        .from_select(
            [
                "user_id",
                "kind",
                "points",
                "currency",
                "amount",
                "provider_transaction_id",
                "created_at",
            ],
            select(
                batch.c.user_id,
                literal("wager"),
                batch.c.points,
                batch.c.currency,
                batch.c.amount,
                batch.c.claim,
                now,
            ),
        )
        .on_conflict_do_nothing(index_elements=["provider_transaction_id"])
        .returning(events.c.user_id, events.c.points)
        .cte("inserted")
    )
    earned = (
        select(
            inserted.c.user_id,
            cast(func.sum(inserted.c.points), BigInteger).label("points"),
            literal(0, BigInteger()).label("redeemed_points"),
            now.label("updated_at"),
        )
        .group_by(inserted.c.user_id)
        .order_by(inserted.c.user_id)
    )
    stmt = insert(accounts).from_select(
        ["user_id", "points", "redeemed_points", "updated_at"], earned
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={
            "points": accounts.c.points + stmt.excluded.points,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    return stmt.returning(*_returned_level())


def _wager(user_id: int, currency: str, cash_part: int, claim_id: int) -> int | None:
    """Write the wager event of a stake once and add its points; the event's id (None when
    the stake earns no points)."""
    points = points_for(cash_part, currency)
    if points <= 0:
        return None
    events = table_of(LoyaltyEvent)
    inserted = db.session.execute(
        dialect_insert(events)
        .values(
            user_id=user_id,
            kind="wager",
            points=points,
            currency=currency,
            amount=cash_part,
            provider_transaction_id=claim_id,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["provider_transaction_id"])
        .returning(events.c.id)
    ).scalar_one_or_none()
    if inserted is not None:
        _move(user_id, points)
        return int(inserted)
    # Already written (by the queue, the sweep or a reversal that ran first).
    return db.session.scalar(
        select(LoyaltyEvent.id).where(
            LoyaltyEvent.provider_transaction_id == claim_id, LoyaltyEvent.kind == "wager"
        )
    )


def award(
    user_id: int, points: int, *, kind: str, reference: str, currency: str, amount: int
) -> int | None:
    """Add ``points`` once per ``reference`` (unique; e.g. a referral reward) in the caller's
    transaction; the new event's id, or None when that reference was already awarded."""
    if points <= 0:
        return None
    events = table_of(LoyaltyEvent)
    inserted = db.session.execute(
        dialect_insert(events)
        .values(
            user_id=user_id,
            kind=kind,
            points=points,
            currency=currency,
            amount=amount,
            reference=reference,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(events.c.id)
    ).scalar_one_or_none()
    if inserted is None:
        return None
    _move(user_id, points)
    return int(inserted)


def _stake_of(bet_claim_id: int) -> Any:
    """The cash stake of a bet, from its ledger row: (user, currency, cash) or None."""
    lt = LedgerTransaction
    return db.session.execute(
        select(lt.user_id, lt.currency, (-lt.cash_delta).label("cash")).where(
            lt.reference_type == "provider_transaction",
            lt.reference_id == str(bet_claim_id),
            lt.type == "bet",
        )
    ).first()


def _wager_event(bet_claim: int, user_id: int) -> Any:
    le = LoyaltyEvent
    return db.session.execute(
        select(le.id, le.points, le.amount).where(
            le.provider_transaction_id == bet_claim, le.kind == "wager", le.user_id == user_id
        )
    ).first()


def _reverse(event: play_events.PlayEvent) -> None:
    # The undone stake is named by the event itself (``reverses_transaction_id``: our claim of
    # the bet), for a provider's refund/rollback and a stale-round refund alike, the same key
    # the jackpot and bonus listeners use.
    bet_claim = event.reverses_transaction_id
    if bet_claim is None:
        return
    wager = _wager_event(bet_claim, event.user_id)
    if wager is None:
        # The reversal ran before its bet's after-commit work: apply the bet first, from its
        # ledger row, so that both end up done exactly once.
        stake = _stake_of(bet_claim)
        if stake is None or stake.user_id != event.user_id:
            return
        _wager(stake.user_id, stake.currency, stake.cash, bet_claim)
        wager = _wager_event(bet_claim, event.user_id)
        if wager is None:
            return  # the stake earned no points
    # Points already spent on a reward stay spent: take back at most the spendable balance
    # (read under the account's row lock, so a redemption cannot spend them meanwhile).
    available = db.session.scalar(
        select(LoyaltyAccount.points)
        .where(LoyaltyAccount.user_id == event.user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    take = min(wager.points, max(int(available or 0), 0))
    events = table_of(LoyaltyEvent)
    taken = db.session.execute(
        dialect_insert(events)
        .values(
            user_id=event.user_id,
            kind="reversal",
            points=-take,
            currency=event.currency,
            amount=wager.amount,
            provider_transaction_id=event.transaction_id,
            reverses_event_id=wager.id,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(events.c.id)
    ).scalar_one_or_none()
    if taken is not None and take > 0:
        _move(event.user_id, -take)


#: How far back the sweep looks, and how old a stake must be before the sweep (rather than the
#: after-commit queue, which normally runs within milliseconds) deals with it.
SWEEP_WINDOW = timedelta(days=1)
SWEEP_GRACE = timedelta(seconds=10)
#: Ledger rows older than this are committed or gone (callbacks answer within their lock and
#: statement timeouts, jobs within theirs): the sweep's high-water mark trails by it.
SWEEP_SETTLED = timedelta(minutes=15)
#: The highest ledger id below which every stake and reversal was swept (``settings`` row).
SWEEP_MARK = "loyalty.sweep_mark"


def sweep(*, window: timedelta = SWEEP_WINDOW, grace: timedelta = SWEEP_GRACE) -> int:
    """Write what the after-commit listener did not (process died after commit): the wager
    events of recent cash stakes without one, then the reversals of recent refunds and
    rollbacks of stakes. Idempotent; returns how many events it handed to the listener."""
    now = utcnow()
    lt, pt = LedgerTransaction, ProviderTransaction
    # CASE: PostgreSQL may evaluate a WHERE's terms in any order, and other references are
    # not numbers.
    claim_id = case(
        (lt.reference_type == "provider_transaction", cast(lt.reference_id, BigInteger))
    )
    mark = int(settings.get(SWEEP_MARK) or 0)
    recent = and_(
        lt.reference_type == "provider_transaction",
        lt.id > mark,
        lt.created_at >= now - window,
        lt.created_at <= now - grace,
    )
    le = LoyaltyEvent
    done = select(le.id).where(le.provider_transaction_id == claim_id).exists()
    handled = 0
    with atomic():
        stakes = db.session.execute(
            select(lt.user_id, lt.currency, (-lt.cash_delta).label("cash"), claim_id.label("c"))
            .where(recent, lt.type == "bet", lt.cash_delta < 0, ~done)
            .order_by(lt.id)
        ).all()
        for s in stakes:
            if points_for(s.cash, s.currency) > 0:
                _wager(s.user_id, s.currency, s.cash, s.c)
                handled += 1
    with atomic():
        bet = table_of(pt).alias("bet")
        undo = table_of(pt).alias("undo")
        reversals = db.session.execute(
            select(
                lt.user_id,
                lt.currency,
                undo.c.id.label("c"),
                undo.c.action,
                bet.c.id.label("bet_claim"),
            )
            .join(undo, undo.c.id == claim_id)
            .join(
                bet,
                and_(
                    bet.c.provider_id == undo.c.provider_id,
                    bet.c.external_id == undo.c.reference_external_id,
                    bet.c.action == "bet",
                ),
            )
            .where(recent, lt.type.in_(("refund", "rollback")), ~done)
            .order_by(lt.id)
        ).all()
        for r in reversals:
            _reverse(
                play_events.PlayEvent(
                    r.action, r.user_id, r.currency, 0, 0, 0, 0, None, None, r.c,
                    reverses="bet", reverses_transaction_id=r.bet_claim,
                )
            )  # fmt: skip
            handled += 1
    _advance_mark(mark, now - SWEEP_SETTLED)
    return handled


def _advance_mark(mark: int, settled_before: Any) -> None:
    """Move the mark to the newest ledger row older than ``SWEEP_SETTLED``: the next sweep
    reads only the rows after it (the primary key), not a day of ledger every minute."""
    lt = LedgerTransaction
    with atomic():
        newest = db.session.scalar(
            select(func.max(lt.id)).where(lt.id > mark, lt.created_at <= settled_before)
        )
        if newest is not None:
            settings.put_state(SWEEP_MARK, int(newest))


# --- reads ----------------------------------------------------------------------------------


def progress(user_id: int) -> dict[str, Any]:
    """Points, level, next level and progress towards it (percent of the gap, 0-100)."""
    account = db.session.get(LoyaltyAccount, user_id)
    spendable = account.points if account else 0
    redeemed = account.redeemed_points if account else 0
    # The level follows the points earned: spending points on rewards never lowers it.
    points = spendable + redeemed
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
        "points": spendable,
        "earned_points": points,
        "redeemed_points": redeemed,
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
