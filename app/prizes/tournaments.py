"""Tournaments: scores from play, leaderboards, settlement paid exactly once.

Invariants:
* Scores live in PostgreSQL (``tournament_participants``) and move no money: they are written
  by an after-commit ``play_events`` listener, in its own transaction once the bet/win
  committed, never inside the callback's. Each (tournament, claim, kind) is scored once (its
  ``tournament_score_events`` marker, inserted ``ON CONFLICT DO NOTHING``); tournaments are
  chosen by the claim's time (``provider_transactions.created_at``), not the listener's.
  A reversal takes back what its bet's marker recorded, applying the bet first if it has not
  run yet. The listener reads the tournaments ``FOR KEY SHARE``; settlement takes the row
  ``FOR UPDATE`` and first scores every claim of the window with no marker (:func:`catch_up`),
  so no bet placed before the end is missed; :func:`sweep` (periodic) redoes lost work.
* Scoring: ``wagered`` (sum of qualifying stakes), ``won`` (sum of wins), ``net`` (wins minus
  stakes), ``multiplier`` (best win / round stake, stored times 10 000). Refunds and rollbacks
  of a bet take its stake back out of ``wagered``/``net``.
* Tie rule: higher score first; on equal scores the player who reached that score first ranks
  higher (``score_at``); then the earlier participant (row id). Only participants with at least
  one qualifying bet are ranked for prizes.
* Settlement pays each prize through ``wallet.post(... "tournament_prize" ...)`` with the key
  ``tournament:<id>:rank:<rank>``: a re-run (or a crash half-way and a rerun) pays nothing twice.
* ``tournament.update`` goes to room ``tournament:<id>`` after commit, at most once per
  ``TOURNAMENT_TICK_SECONDS`` per tournament.
* Entry fees: paid at join under wallet → tournament locks; currency and fee are frozen once
  anyone paid. Cancel/delete close the tournament under its row lock alone, then refund each
  fee in its own transaction, wallet → participant, in the fee's ledger currency
  (``refund_fees``, re-run by the settlement job; the ledger key pays each refund once).
* The live board is mirrored after commit into a Redis sorted set (``tournament_board``) with
  the absolute values of this transaction; reads use it while the tournament runs and fall back
  to PostgreSQL (the same ordering) whenever Redis cannot answer. Settlement ranks from
  PostgreSQL only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import (
    SQLColumnExpression,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    text,
    update,
)

from app.bonus import promotions
from app.bonus.models import Promotion
from app.core import audit, notifications
from app.core.base import utcnow
from app.core.db import (
    atomic,
    dialect_insert,
    lock_existing,
    lock_one,
    on_commit,
    parse_row_id,
    table_of,
)
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.events import publish
from app.core.extensions import db, redis_store
from app.core.i18n import Msg
from app.core.models import AuditLog
from app.core.money import MoneyError, format_minor, normalize_currency, parse_minor
from app.identity.models import User
from app.play import events as play_events
from app.play import guard as play_guard
from app.play import seams as play_seams
from app.play.models import GameRound, ProviderTransaction
from app.prizes import tournament_board
from app.prizes.models import (
    TOURNAMENT_ENTRIES,
    TOURNAMENT_SCORING,
    TOURNAMENT_STATES,
    Tournament,
    TournamentParticipant,
    TournamentScoreEvent,
)
from app.wallet import ledger as wallet
from app.wallet.models import LedgerTransaction

SOURCE = "tournaments"
HOUSE = "house:tournaments"
MULTIPLIER_SCALE = 10_000
BEFORE_START_ONLY = (
    "currency", "game_ids", "entry", "scoring", "min_bet", "starts_at", "entry_fee",
)  # fmt: skip
PRIZE_TYPES = ("cash", "bonus")
EDITABLE = (
    "name",
    "description",
    "currency",
    "game_ids",
    "starts_at",
    "ends_at",
    "entry",
    "scoring",
    "min_bet",
    "max_participants",
    "prizes",
    "entry_fee",
    "bonus_promotion_id",
)


def room(tournament_id: int) -> str:
    return f"tournament:{tournament_id}"


# --------------------------------------------------------------------------- play path


def scores(event: play_events.PlayEvent) -> bool:
    """Could ``event`` move a tournament score? Bets and wins, and refunds and rollbacks of a
    bet that name it."""
    if event.amount <= 0:
        return False
    if event.kind in ("bet", "win"):
        return True
    return (
        event.kind in ("refund", "rollback")
        and event.reverses == "bet"
        and event.reverses_transaction_id is not None
    )


_Out = list[tuple[int, datetime, tournament_board.Entry]]


def on_play(event: play_events.PlayEvent) -> None:
    """After-commit ``play_events`` listener (its own transaction, after the callback's): move
    the player's score in every tournament that was running when the event's claim was made
    (the claim's ``created_at``, not the time this runs). Idempotent by (tournament, claim,
    kind): a second run (the after-commit queue and the sweep, or settlement) adds nothing."""
    if not scores(event):
        return
    t, pt = Tournament, ProviderTransaction
    # One statement: the tournaments running at the claim's time, FOR KEY SHARE (settlement
    # takes the row FOR UPDATE: it waits for this transaction, or this one sees it settled).
    running = db.session.execute(
        select(*_TOUR_COLUMNS, pt.created_at.label("at"))
        .select_from(t)
        .join(pt, pt.id == event.transaction_id)
        .where(
            t.currency == event.currency,
            t.status == "scheduled",
            t.starts_at <= pt.created_at,
            t.ends_at > pt.created_at,
        )
        .with_for_update(read=True, key_share=True, of=t)
    ).all()
    out: _Out = []
    for tour in running:
        _apply(tour, event, tour.at, out)
    _after_commit(out)


def on_play_batch(events: list[play_events.PlayEvent]) -> None:
    """``on_play`` over ``events`` in order, in the caller's transaction, with one read of the
    tournaments running at each event's claim time for the whole batch (most batches find
    none and stop there)."""
    scoring = [event for event in events if scores(event)]
    if not scoring:
        return
    t, pt = Tournament, ProviderTransaction
    rows = db.session.execute(
        select(*_TOUR_COLUMNS, t.currency, pt.id.label("claim"), pt.created_at.label("at"))
        .select_from(t)
        .join(pt, pt.id.in_({event.transaction_id for event in scoring}))
        .where(
            t.currency.in_({event.currency for event in scoring}),
            t.status == "scheduled",
            t.starts_at <= pt.created_at,
            t.ends_at > pt.created_at,
        )
        .order_by(pt.id, t.id)
        .with_for_update(read=True, key_share=True, of=t)
    ).all()
    if not rows:
        return
    running: dict[int, list[Any]] = {}
    for row in rows:
        running.setdefault(row.claim, []).append(row)
    out: _Out = []
    for event in scoring:
        for tour in running.get(event.transaction_id, ()):
            if tour.currency == event.currency:
                _apply(tour, event, tour.at, out)
    _after_commit(out)


_TOUR_COLUMNS = (
    Tournament.id,
    Tournament.game_ids,
    Tournament.scoring,
    Tournament.min_bet,
    Tournament.entry,
    Tournament.max_participants,
    Tournament.starts_at,
    Tournament.ends_at,
)


def _after_commit(out: _Out) -> None:
    if out:
        touched = list(dict.fromkeys(tid for tid, _, _ in out))
        on_commit(lambda: _mirror(out))
        on_commit(lambda: tick(touched))


def _apply(tour: Any, event: play_events.PlayEvent, at: datetime, out: _Out) -> bool:
    """Score ``event`` (claimed at ``at``) in ``tour`` once; True if a score moved."""
    if not (tour.starts_at <= at < tour.ends_at):
        return False
    if event.kind == "bet":
        return _apply_bet(tour, event, at, out)
    if event.kind == "win":
        return _apply_win(tour, event, at, out)
    return _apply_reversal(tour, event, at, out)


def _apply_bet(tour: Any, event: play_events.PlayEvent, at: datetime, out: _Out) -> bool:
    if tour.game_ids is not None and event.game_id not in tour.game_ids:
        return False
    if event.amount < tour.min_bet or not _participates(tour, event.user_id, at, enrol=True):
        return False
    if not _mark(tour.id, event.user_id, event.transaction_id, "bet", event.amount):
        return False
    return _score(tour, event.user_id, at, out, stake=event.amount)


def _apply_win(tour: Any, event: play_events.PlayEvent, at: datetime, out: _Out) -> bool:
    if tour.game_ids is not None and event.game_id not in tour.game_ids:
        return False
    # A win that runs before its bet (another worker's queue) in a free tournament: the
    # round's earlier bets first (they enrol the player), as they would have run.
    if not _participates(tour, event.user_id, at, enrol=False) and (
        tour.entry != "free"
        or not _apply_claims(
            tour,
            out,
            ProviderTransaction.provider_id == event.provider_id,
            ProviderTransaction.external_round_id == event.round_id,
            ProviderTransaction.user_id == event.user_id,
            ProviderTransaction.action == "bet",
            ProviderTransaction.id < event.transaction_id,
        )
    ):
        return False
    if not _mark(tour.id, event.user_id, event.transaction_id, "win", event.amount):
        return False
    multiple = _multiple(event) if tour.scoring == "multiplier" else None
    return _score(tour, event.user_id, at, out, win=event.amount, multiple=multiple)


def _apply_reversal(tour: Any, event: play_events.PlayEvent, at: datetime, out: _Out) -> bool:
    """A refund or rollback of a bet takes back exactly what that bet scored here (nothing for
    a bet under the minimum, on another game, placed before the start or before joining)."""
    bet_claim = event.reverses_transaction_id
    if bet_claim is None:
        return False
    scored = _marked(tour.id, bet_claim, "bet")
    if scored is None:
        # The reversal runs before its bet's after-commit work: apply the bet first, so both
        # end up done exactly once (the bet's late run finds its marker).
        if not _apply_claims(tour, out, ProviderTransaction.id == bet_claim):
            return False
        scored = _marked(tour.id, bet_claim, "bet")
    if scored is None or scored.user_id != event.user_id:
        return False
    if not _mark(
        tour.id, event.user_id, bet_claim, "reversal", scored.amount, by=event.transaction_id
    ):
        return False
    return _score(tour, event.user_id, at, out, back=scored.amount)


def _participates(tour: Any, user_id: int, at: datetime, *, enrol: bool) -> bool:
    """Does the player take part at ``at``? Opt-in: joined by then. Free: enrolled, or (a bet:
    ``enrol``) enrolled now while places remain."""
    p = TournamentParticipant
    joined = db.session.scalar(
        select(p.joined_at).where(p.tournament_id == tour.id, p.user_id == user_id)
    )
    if joined is not None:
        return tour.entry == "free" or joined <= at
    return enrol and tour.entry == "free" and _enrol_free(tour, user_id, at)


def _mark(
    tournament_id: int, user_id: int, claim: int, kind: str, amount: int, by: int | None = None
) -> bool:
    """Write the processed marker; False if it was there (this claim already scored here)."""
    events = table_of(TournamentScoreEvent)
    return (
        db.session.execute(
            dialect_insert(events)
            .values(
                tournament_id=tournament_id,
                user_id=user_id,
                provider_transaction_id=claim,
                kind=kind,
                amount=amount,
                by_transaction_id=by,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(
                index_elements=["tournament_id", "provider_transaction_id", "kind"]
            )
            .returning(events.c.id)
        ).scalar_one_or_none()
        is not None
    )


def _marked(tournament_id: int, claim: int, kind: str) -> Any:
    se = TournamentScoreEvent
    return db.session.execute(
        select(se.user_id, se.amount).where(
            se.tournament_id == tournament_id,
            se.provider_transaction_id == claim,
            se.kind == kind,
        )
    ).first()


def _claim_events(*criteria: Any) -> list[tuple[play_events.PlayEvent, datetime]]:
    """The play events of applied claims (what the callback emitted), with each claim's time,
    in claim order: for the sweep, settlement, and an event that needs an earlier one first."""
    pt = table_of(ProviderTransaction).c
    target = table_of(ProviderTransaction).alias("target")
    r = table_of(GameRound).c
    rows = db.session.execute(
        select(
            pt.id,
            pt.action,
            pt.user_id,
            pt.currency,
            pt.amount,
            pt.provider_id,
            pt.external_round_id,
            pt.created_at,
            r.game_id,
            r.bet_cash,
            r.bet_bonus,
            target.c.id.label("target_id"),
            target.c.action.label("target_action"),
            target.c.amount.label("target_amount"),
        )
        .select_from(table_of(ProviderTransaction))
        .outerjoin(
            table_of(GameRound),
            and_(
                r.provider_id == pt.provider_id,
                r.external_round_id == pt.external_round_id,
                r.user_id == pt.user_id,
            ),
        )
        .outerjoin(
            target,
            and_(
                pt.action.in_(("refund", "rollback")),
                target.c.provider_id == pt.provider_id,
                target.c.external_id == pt.reference_external_id,
            ),
        )
        .where(pt.state == "applied", pt.action.in_(_SCORED_ACTIONS), *criteria)
        .order_by(pt.id)
    ).all()
    events = []
    for row in rows:
        reversal = row.action in ("refund", "rollback")
        # A free round's win is paid by the free-rounds contract: no play event.
        if (
            row.action == "win"
            and not row.bet_cash
            and not row.bet_bonus
            and play_seams.free_rounds().free_round(row.provider_id, row.external_round_id)
        ):
            continue
        event = play_events.PlayEvent(
            row.action, row.user_id, row.currency,
            (row.target_amount or 0) if reversal else row.amount, 0, 0,
            row.provider_id, row.game_id, row.external_round_id, row.id,
            reverses=row.target_action if reversal else None,
            reverses_transaction_id=row.target_id if reversal else None,
        )  # fmt: skip
        if scores(event):
            events.append((event, row.created_at))
    return events


_SCORED_ACTIONS = ("bet", "win", "refund", "rollback")


def _apply_claims(tour: Any, out: _Out, *criteria: Any) -> int:
    """Apply the claims matching ``criteria`` to ``tour``, in claim order; how many scored."""
    return sum(_apply(tour, event, at, out) for event, at in _claim_events(*criteria))


def catch_up(tour: Any, until: datetime, since: datetime | None = None) -> int:
    """Score in ``tour`` every qualifying claim made in its window (from ``since``, before
    ``until``) that has no marker yet: what the after-commit step has not done (still queued,
    lost in a crash, or a win that ran before its bet). Idempotent; how many scored."""
    pt = ProviderTransaction
    se = TournamentScoreEvent
    target = table_of(ProviderTransaction).alias("reversed_bet")
    own = (
        select(se.id)
        .where(
            se.tournament_id == tour.id,
            se.provider_transaction_id == pt.id,
            se.kind == pt.action,
        )
        .exists()
    )
    undone = (
        select(se.id)
        .where(
            se.tournament_id == tour.id,
            se.provider_transaction_id == target.c.id,
            se.kind == "reversal",
        )
        .exists()
    )
    reversed_bet = (
        select(target.c.id)
        .where(
            target.c.provider_id == pt.provider_id,
            target.c.external_id == pt.reference_external_id,
            target.c.action == "bet",
            ~undone,
        )
        .exists()
    )
    criteria = [
        pt.currency == tour.currency,
        pt.created_at >= max(tour.starts_at, since or tour.starts_at),
        pt.created_at < min(tour.ends_at, until),
        or_(
            and_(pt.action.in_(("bet", "win")), ~own),
            and_(pt.action.in_(("refund", "rollback")), reversed_bet),
        ),
    ]
    if tour.entry != "free":
        p = TournamentParticipant
        criteria.append(pt.user_id.in_(select(p.user_id).where(p.tournament_id == tour.id)))
    out: _Out = []
    done = _apply_claims(tour, out, *criteria)
    _after_commit(out)
    return done


def _mirror(items: _Out) -> None:
    for tournament_id, ends_at, entry in items:
        tournament_board.mirror(tournament_id, ends_at, [entry])


_ENROL_LOCK = 0x4A58_5452  # "JXTR"


def enrolment_lock(tournament_id: int) -> None:
    """Transaction-scoped advisory lock serializing enrolments of one tournament (PostgreSQL;
    SQLite serializes writers anyway)."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(:a, :b)"),
            {"a": _ENROL_LOCK, "b": tournament_id % (1 << 31)},
        )


def _enrol_free(tour: Any, user_id: int, at: datetime) -> bool:
    """Free entry: the first qualifying bet enrols the player (while places remain)."""
    p = TournamentParticipant
    if tour.max_participants is not None:
        # Rare (first bet per player): serialize enrolments to honour the cap. Not the row
        # lock: this transaction holds the row FOR KEY SHARE, and two listeners upgrading it
        # would deadlock.
        enrolment_lock(tour.id)
        exists = db.session.scalar(
            select(p.id).where(p.tournament_id == tour.id, p.user_id == user_id)
        )
        if exists is not None:
            return True
        count = db.session.scalar(select(func.count(p.id)).where(p.tournament_id == tour.id))
        if count >= tour.max_participants:
            return False
    db.session.execute(
        dialect_insert(p)
        .values(tournament_id=tour.id, user_id=user_id, joined_at=at, score_at=at)
        .on_conflict_do_nothing(index_elements=["tournament_id", "user_id"])
    )
    return True


def _score(
    tour: Any,
    user_id: int,
    at: datetime,
    out: _Out,
    *,
    stake: int = 0,
    win: int = 0,
    back: int = 0,
    multiple: int | None = None,
) -> bool:
    """Move the score; the row as committed (``RETURNING``) goes to the Redis mirror."""
    p = TournamentParticipant
    new_score: SQLColumnExpression[int]
    values: dict[str, Any] = {
        "wagered": p.wagered + stake - back,
        "won": p.won + win,
        "bets": p.bets + (1 if stake else 0),
    }
    if tour.scoring == "wagered":
        new_score = p.score + stake - back
    elif tour.scoring == "won":
        new_score = p.score + win
    elif tour.scoring == "net":
        new_score = p.score + win - stake + back
    elif multiple is None:  # multiplier: best win over the round's stake
        new_score = p.score
    else:
        new_score = case((p.score < multiple, multiple), else_=p.score)
    values["score"] = new_score
    # When the score was reached: the claim's time (the latest, should claims run out of order).
    reached = case((p.score_at > at, p.score_at), else_=at)
    values["score_at"] = case((new_score != p.score, reached), else_=p.score_at)
    row = db.session.execute(
        update(p)
        .where(p.tournament_id == tour.id, p.user_id == user_id)
        .values(**values)
        .returning(p.id, p.user_id, p.score, p.score_at, p.bets, p.won, p.wagered)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        return False
    out.append((tour.id, tour.ends_at, tournament_board.entry_of(row)))
    return True


def _multiple(event: play_events.PlayEvent) -> int | None:
    if not event.round_id:
        return None
    stake = db.session.scalar(
        select(GameRound.total_bet).where(
            GameRound.provider_id == event.provider_id,
            GameRound.external_round_id == event.round_id,
            GameRound.user_id == event.user_id,
        )
    )
    if not stake:
        return None
    return event.amount * MULTIPLIER_SCALE // stake


def tick(tournament_ids: list[int]) -> None:
    """After commit: push the live top 10, at most once per tournament per interval."""
    seconds = int(current_app.config.get("TOURNAMENT_TICK_SECONDS", 2))
    redis = redis_store.client()
    due = [
        t for t in tournament_ids if redis.set(f"jx:tournament:tick:{t}", 1, nx=True, ex=seconds)
    ]
    if not due:
        return
    with atomic():
        for tour in db.session.scalars(select(Tournament).where(Tournament.id.in_(due))):
            publish("tournament.update", board_event(tour), room=room(tour.id))


# --------------------------------------------------------------------------- players


def join(tournament_id: int, user: Any) -> TournamentParticipant:
    """Opt in (idempotent: a second join returns the first and charges nothing); refused once
    the tournament has ended or is full. An entry fee is paid from the cash wallet
    (``tournament_fee``) after the responsible-gaming checks of a stake."""
    currency = db.session.scalar(select(Tournament.currency).where(Tournament.id == tournament_id))
    if currency is None:
        raise NotFound("Tournament not found")
    with atomic():
        # Wallet before tournament: the order of the bet path (wallet lock, then the running
        # tournaments FOR KEY SHARE), so a join never deadlocks with the player's own bet.
        wallet.lock(user.id, currency)
        tour = lock_existing(Tournament, Tournament.id == tournament_id)
        if tour.status != "scheduled" or tour.ends_at <= utcnow():
            raise Conflict("This tournament is over")
        if tour.currency != currency:  # staff changed it before anyone paid: retry
            raise Conflict("The tournament's currency changed; try again")
        enrolment_lock(tour.id)
        p = TournamentParticipant
        existing = db.session.scalar(
            select(p).where(p.tournament_id == tour.id, p.user_id == user.id)
        )
        if existing is not None:
            return existing
        if tour.max_participants is not None:
            count = db.session.execute(
                select(func.count(p.id)).where(p.tournament_id == tour.id)
            ).scalar_one()
            if count >= tour.max_participants:
                raise Conflict("This tournament is full")
        row = TournamentParticipant(tournament_id=tour.id, user_id=user.id, fee_paid=0)
        if tour.entry_fee > 0:
            play_guard.check_bet_allowed(
                user.id, tour.entry_fee, tour.currency, user.status, user.status_until
            )
            posting = wallet.post(
                user.id,
                tour.currency,
                "tournament_fee",
                cash_delta=-tour.entry_fee,
                source=SOURCE,
                idempotency_key=f"tournament:{tour.id}:fee:{user.id}",
                reference_type="tournament",
                reference_id=tour.id,
                description=f"Entry fee: {tour.name}",
            )
            row.fee_paid = tour.entry_fee
            row.fee_transaction_id = posting.transaction_id
        db.session.add(row)
        db.session.flush()
        tid, ends_at, entry = tour.id, tour.ends_at, tournament_board.entry_of(row)
        on_commit(lambda: tournament_board.mirror(tid, ends_at, [entry]))
        return row


def _fee_currency(part: Any, default: str) -> str:
    """The currency the fee was paid in: its ledger posting's (the tournament's currency could
    only change while nobody had paid, but the posting is the evidence)."""
    if part.fee_transaction_id is None:
        return default
    currency = db.session.scalar(
        select(LedgerTransaction.currency).where(LedgerTransaction.id == part.fee_transaction_id)
    )
    return currency or default


def refund_fees(tournament_id: int) -> int:
    """Give every paid entry fee of a cancelled tournament back (``refund``, other leg
    ``house:tournaments``), each in its own transaction and in the bet path's lock order:
    the player's wallet, then the participant row; the tournament row is not locked. Re-runnable
    (the settlement job calls it for cancelled tournaments): a refunded row is skipped and the
    ledger key ``tournament:<id>:fee:<user>:refund`` pays once even if the row update was lost.
    """
    tour = db.session.get(Tournament, tournament_id)
    if tour is None or tour.status != "cancelled":
        return 0
    name, default_currency = tour.name, tour.currency
    p = TournamentParticipant
    pending = db.session.scalars(
        select(p)
        .where(
            p.tournament_id == tournament_id, p.fee_paid > 0, p.fee_refund_transaction_id.is_(None)
        )
        .order_by(p.user_id)
    ).all()
    todo = [(part.id, part.user_id, _fee_currency(part, default_currency)) for part in pending]
    refunded = 0
    for part_id, user_id, currency in todo:
        with atomic():
            wallet.lock(user_id, currency)
            part = lock_one(p, p.id == part_id)
            if part is None or part.fee_refund_transaction_id is not None:
                continue
            posting = wallet.post(
                user_id,
                currency,
                "refund",
                cash_delta=part.fee_paid,
                source=SOURCE,
                idempotency_key=f"tournament:{tournament_id}:fee:{user_id}:refund",
                reference_type="tournament",
                reference_id=tournament_id,
                description=f"Entry fee refund: {name}",
                counter_account=HOUSE,
            )
            part.fee_refund_transaction_id = posting.transaction_id
            refunded += not posting.replayed
    return refunded


def _paid_fees(tournament_id: int) -> int:
    p = TournamentParticipant
    return db.session.execute(
        select(func.count(p.id)).where(p.tournament_id == tournament_id, p.fee_paid > 0)
    ).scalar_one()


def _pending_fees(tournament_id: int) -> int:
    p = TournamentParticipant
    return db.session.execute(
        select(func.count(p.id)).where(
            p.tournament_id == tournament_id,
            p.fee_paid > 0,
            p.fee_refund_transaction_id.is_(None),
        )
    ).scalar_one()


# --------------------------------------------------------------------------- settlement


def settle(tournament_id: int) -> Tournament:
    """Rank from PostgreSQL and pay the prize table (idempotent; refuses before the end, and
    until ``TOURNAMENT_SETTLE_GRACE_SECONDS`` after it: see :func:`settle_due`)."""
    with atomic():
        tour = lock_one(Tournament, Tournament.id == tournament_id)
        if tour is None:
            raise NotFound("Tournament not found")
        if tour.status != "scheduled":
            return tour
        if tour.ends_at > utcnow():
            raise Conflict("The tournament has not ended yet")
        if tour.ends_at > utcnow() - settle_grace():
            raise Conflict("The tournament has just ended: its last bets may still be in flight")
        # Scores are written after each callback commits: first score every bet, win and
        # refund claimed before the end that is not scored yet (queued, lost in a crash).
        # Under this row lock no listener scores here meanwhile (they read it FOR KEY SHARE).
        catch_up(tour, tour.ends_at)
        p = TournamentParticipant
        ranked = db.session.scalars(
            select(p)
            .where(p.tournament_id == tour.id, p.bets > 0)
            .order_by(*tournament_board.ordering())
            .with_for_update(of=p)
            .execution_options(populate_existing=True)
        ).all()
        table = prize_table(tour)
        for rank, part in enumerate(ranked, start=1):
            part.rank = rank
            prize, kind = table[rank - 1] if rank <= len(table) else (0, "cash")
            if prize <= 0:
                continue
            part.prize = prize
            part.prize_type = kind
            if kind == "bonus":
                _grant_bonus_prize(tour, part)
                continue
            posting = wallet.post(
                part.user_id,
                tour.currency,
                "tournament_prize",
                cash_delta=prize,
                source=SOURCE,
                idempotency_key=f"tournament:{tour.id}:rank:{rank}",
                reference_type="tournament",
                reference_id=tour.id,
                description=f"{tour.name}: rank {rank}",
                meta={"tournament_id": tour.id, "rank": rank, "score": part.score},
            )
            part.prize_status = "paid"
            part.ledger_transaction_id = posting.transaction_id
            notifications.notify(
                part.user_id,
                "tournament_prize",
                tour.name,
                Msg(
                    "Rank %(rank)s: you won %(amount)s %(currency)s",
                    rank=rank,
                    amount=format_minor(prize, tour.currency),
                    currency=tour.currency,
                ),
                data={"tournament_id": tour.id, "rank": rank},
                dedupe_key=f"tournament_prize:{tour.id}:{rank}",
            )
        TOURNAMENT_STATES.move(tour, "settled")
        tour.settled_at = utcnow()
        db.session.flush()
        publish("tournament.update", board_event(tour), room=room(tour.id))
        settled_id = tour.id
        on_commit(lambda: tournament_board.drop(settled_id))
        return tour


def _grant_bonus_prize(tour: Tournament, part: TournamentParticipant) -> None:
    """A bonus prize: a bonus of the tournament's promotion (its wagering terms), keyed by
    tournament and rank. While the player has another bonus open it waits (``awaiting``) and
    the settlement job grants it later."""
    promotion_id, amount = tour.bonus_promotion_id, part.prize
    if promotion_id is None:  # ``_validate`` refuses bonus prizes without their promotion
        raise NotFound("Promotion not found")
    if amount is None:  # ``settle`` sets a rank's prize before granting (or awaiting) it
        raise ValueError(f"tournament participant {part.id}: a bonus prize without an amount")
    bonus = promotions.grant_prize(
        part.user_id,
        promotion_id,
        amount,
        f"tournament:{tour.id}:rank:{part.rank}",
        description=f"{tour.name}: rank {part.rank}",
    )
    if bonus is None:
        part.prize_status = "awaiting"
        return
    part.prize_status = "paid"
    part.bonus_id = bonus.id


def grant_awaiting_prizes() -> int:
    """Retry the bonus prizes that waited for the winner's open bonus to end."""
    p = TournamentParticipant
    granted = 0
    for part_id in list(db.session.scalars(select(p.id).where(p.prize_status == "awaiting"))):
        with atomic():
            part = lock_existing(p, p.id == part_id)
            if part.prize_status != "awaiting":
                continue
            _grant_bonus_prize(db.session.get_one(Tournament, part.tournament_id), part)
            granted += part.prize_status == "paid"
    return granted


def settle_grace() -> timedelta:
    return timedelta(seconds=int(current_app.config.get("TOURNAMENT_SETTLE_GRACE_SECONDS", 90)))


def settle_due() -> list[int]:
    """Settle the tournaments that ended at least ``TOURNAMENT_SETTLE_GRACE_SECONDS`` ago: a
    bet claimed just before the end commits within its request's timeout, and settlement
    must see it to score it."""
    ids = list(
        db.session.scalars(
            select(Tournament.id).where(
                Tournament.status == "scheduled", Tournament.ends_at <= utcnow() - settle_grace()
            )
        )
    )
    for tid in ids:
        settle(tid)
    grant_awaiting_prizes()
    finish_cancellations()
    return ids


#: How far back the sweep looks, and how old a claim must be before the sweep (rather than the
#: after-commit queue, which normally runs within milliseconds) deals with it.
SWEEP_WINDOW = timedelta(days=1)
SWEEP_GRACE = timedelta(seconds=10)


def sweep(*, window: timedelta = SWEEP_WINDOW, grace: timedelta = SWEEP_GRACE) -> int:
    """Periodic: score what the after-commit listener did not (a process that died between
    a callback's commit and its queue) in every unsettled tournament, for claims of the last
    ``window`` older than ``grace``. Each tournament in its own transaction, under its row
    FOR KEY SHARE like the listener; idempotent. Returns how many claims it scored."""
    now = utcnow()
    t = Tournament
    ids = list(
        db.session.scalars(
            select(t.id)
            .where(t.status == "scheduled", t.starts_at <= now - grace, t.ends_at > now - window)
            .order_by(t.id)
        )
    )
    done = 0
    for tid in ids:
        with atomic():
            tour = db.session.execute(
                select(*_TOUR_COLUMNS, t.currency)
                .where(t.id == tid, t.status == "scheduled")
                .with_for_update(read=True, key_share=True)
            ).first()
            if tour is not None:
                done += catch_up(tour, now - grace, since=now - window)
    return done


# --------------------------------------------------------------------------- staff


def parse_fields(data: dict[str, Any], currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in EDITABLE:
            continue
        try:
            if key in ("min_bet", "entry_fee"):
                value = parse_minor(value, currency)
            elif key == "prizes":
                value = _parse_prizes(value, currency)
            elif key == "bonus_promotion_id" and value not in (None, ""):
                value = parse_row_id(value)
                if value is None:
                    raise ValidationError.field(key, "A promotion id")
            elif key == "bonus_promotion_id":
                value = None
        except MoneyError as exc:
            raise ValidationError.field(key, str(exc)) from None
        out[key] = value
    return out


def _parse_prizes(items: Any, currency: str) -> list[dict[str, Any]]:
    """``["100.00", {"amount": "50", "type": "bonus"}]`` → ``[{"amount": minor, "type": ..}]``."""
    if not isinstance(items, list) or len(items) > 100:
        raise ValidationError.field("prizes", "A list of at most 100 prizes")
    out = []
    for item in items:
        kind = "cash"
        if isinstance(item, dict):
            kind = item.get("type") or "cash"
            item = item.get("amount")
        if kind not in PRIZE_TYPES:
            raise ValidationError.field("prizes", "A prize is cash or bonus")
        out.append({"amount": parse_minor(item, currency), "type": kind})
    return out


def prize_table(tour: Tournament) -> list[tuple[int, str]]:
    """(amount, cash|bonus) per rank; a bare integer (older rows) is a cash prize."""
    table = []
    for item in tour.prizes or []:
        if isinstance(item, dict):
            table.append((int(item["amount"]), item.get("type") or "cash"))
        else:
            table.append((int(item), "cash"))
    return table


def _validate(tour: Tournament) -> None:
    if tour.ends_at <= tour.starts_at:
        raise ValidationError.field("ends_at", "Must be after starts_at")
    if tour.entry not in TOURNAMENT_ENTRIES:
        raise ValidationError.field("entry", "free or opt_in")
    if tour.scoring not in TOURNAMENT_SCORING:
        raise ValidationError.field("scoring", ", ".join(TOURNAMENT_SCORING))
    table = prize_table(tour)
    if any(amount < 0 for amount, _ in table):
        raise ValidationError.field("prizes", "Prizes cannot be negative")
    if tour.entry_fee and tour.entry != "opt_in":
        raise ValidationError.field("entry_fee", "An entry fee needs entry opt_in (paid at join)")
    if tour.max_participants is not None and (
        isinstance(tour.max_participants, bool)
        or not isinstance(tour.max_participants, int)
        or tour.max_participants <= 0
    ):
        raise ValidationError.field("max_participants", "A positive whole number")
    if any(kind == "bonus" for _, kind in table):
        promo = (
            db.session.get(Promotion, tour.bonus_promotion_id) if tour.bonus_promotion_id else None
        )
        if promo is None:
            raise ValidationError.field(
                "bonus_promotion_id", "Bonus prizes need the promotion whose terms they follow"
            )
        if promo.currency != tour.currency:
            raise ValidationError.field(
                "bonus_promotion_id", f"The promotion is in {promo.currency}"
            )


def create(data: dict[str, Any], *, actor: Any) -> Tournament:
    with atomic():
        currency = normalize_currency(data["currency"])
        fields = parse_fields({**data, "currency": currency}, currency)
        fields.setdefault("prizes", [])
        fields.setdefault("entry", "free")
        fields.setdefault("scoring", "wagered")
        fields.setdefault("min_bet", 0)
        fields.setdefault("entry_fee", 0)
        tour = Tournament(created_by=getattr(actor, "id", None), status="scheduled", **fields)
        _validate(tour)
        db.session.add(tour)
        db.session.flush()
        audit.record(
            "tournament.create",
            actor=actor,
            target_type="tournament",
            target_id=tour.id,
            after=admin_json(tour),
        )
        return tour


def update_tournament(tournament_id: int, data: dict[str, Any], *, actor: Any) -> Tournament:
    with atomic():
        tour = lock_one(Tournament, Tournament.id == tournament_id)
        if tour is None:
            raise NotFound("Tournament not found")
        if tour.status != "scheduled":
            raise Conflict("A settled or cancelled tournament cannot change")
        started = tour.starts_at <= utcnow()
        fields = parse_fields(data, normalize_currency(data.get("currency") or tour.currency))
        if "currency" in fields:
            fields["currency"] = normalize_currency(fields["currency"])
        if started:
            frozen = sorted(k for k in fields if k in BEFORE_START_ONLY)
            if frozen:
                raise Conflict(f"Cannot change {', '.join(frozen)} after the start")
        money = sorted(
            k for k in ("currency", "entry_fee") if k in fields and fields[k] != getattr(tour, k)
        )
        if money:
            # Joins lock this row too, so the count is exact: fees are paid (and refunded) in
            # the currency and amount they were charged in.
            paid = _paid_fees(tour.id)
            if paid:
                raise Conflict(
                    f"Cannot change {' or '.join(money)}: {paid} player(s) already paid the "
                    f"entry fee (cancel the tournament to refund them)"
                )
        before = admin_json(tour)
        for key, value in fields.items():
            setattr(tour, key, value)
        _validate(tour)
        db.session.flush()
        # A new end moves the keys' expiry: rebuild the board on its next read.
        on_commit(lambda: tournament_board.drop(tournament_id))
        audit.record(
            "tournament.update",
            actor=actor,
            target_type="tournament",
            target_id=tour.id,
            before=before,
            after=admin_json(tour),
        )
        return tour


DELETED_REASON = "Deleted before the start"


def delete_tournament(tournament_id: int, *, actor: Any) -> None:
    """Delete before the start. Like ``cancel``: the tournament is closed under its row lock
    first (no join gets in after), then every fee is refunded in its own transaction, then the
    rows go. If the process dies between, the settlement job refunds the rest and finishes the
    deletion (``finish_cancellations``)."""
    with atomic():
        tour = lock_one(Tournament, Tournament.id == tournament_id)
        if tour is None:
            raise NotFound("Tournament not found")
        if tour.starts_at <= utcnow() or not TOURNAMENT_STATES.allows(tour.status, "cancelled"):
            raise Conflict("A tournament can be deleted only before it starts")
        before = admin_json(tour)
        before["fees_to_refund"] = _pending_fees(tour.id)
        TOURNAMENT_STATES.move(tour, "cancelled")
        tour.cancelled_reason = DELETED_REASON
        db.session.flush()
        on_commit(lambda: tournament_board.drop(tournament_id))
        audit.record(
            "tournament.delete",
            actor=actor,
            target_type="tournament",
            target_id=tournament_id,
            before=before,
        )
    refund_fees(tournament_id)
    _purge_deleted(tournament_id)


def _purge_deleted(tournament_id: int) -> bool:
    """The last step of a delete: once every fee is refunded, remove the rows."""
    with atomic():
        tour = lock_one(Tournament, Tournament.id == tournament_id)
        if tour is None or not _deleting(tour) or _pending_fees(tour.id):
            return False
        db.session.execute(
            delete(TournamentScoreEvent).where(TournamentScoreEvent.tournament_id == tour.id)
        )
        db.session.execute(
            delete(TournamentParticipant).where(TournamentParticipant.tournament_id == tour.id)
        )
        db.session.delete(tour)
        return True


def _deleting(tour: Tournament) -> bool:
    """Cancelled by ``delete_tournament`` (its audit row says so), not by ``cancel``."""
    if tour.status != "cancelled" or tour.cancelled_reason != DELETED_REASON:
        return False
    return (
        db.session.scalar(
            select(AuditLog.id)
            .where(
                AuditLog.action == "tournament.delete",
                AuditLog.target_type == "tournament",
                AuditLog.target_id == str(tour.id),
            )
            .limit(1)
        )
        is not None
    )


def cancel(tournament_id: int, *, actor: Any, reason: str) -> Tournament:
    """Cancel before settlement: no prizes, every entry fee refunded (idempotent). Audited.

    Lock order: the tournament row alone to close it (one transaction: no join or settlement
    gets in after), then each fee refund in its own transaction, wallet before participant row
    (the order of bets and joins: wallet, then tournament). Holding the tournament while
    locking wallets would deadlock with a bet of a participant."""
    if not reason or not reason.strip():
        raise ValidationError.field("reason", "A reason is required")
    with atomic():
        tour = lock_one(Tournament, Tournament.id == tournament_id)
        if tour is None:
            raise NotFound("Tournament not found")
        if tour.status == "settled":
            raise Conflict("A settled tournament cannot be cancelled")
        if TOURNAMENT_STATES.allows(tour.status, "cancelled"):
            before = admin_json(tour)
            TOURNAMENT_STATES.move(tour, "cancelled")
            tour.cancelled_reason = reason.strip()
            db.session.flush()
            on_commit(lambda: tournament_board.drop(tournament_id))
            audit.record(
                "tournament.cancel",
                actor=actor,
                target_type="tournament",
                target_id=tour.id,
                before=before,
                after={**admin_json(tour), "fees_to_refund": _pending_fees(tour.id)},
                reason=reason.strip(),
            )
            publish("tournament.update", board_event(tour), room=room(tour.id))
    # A second cancel (or the job) only finishes refunds a crash left behind.
    refund_fees(tournament_id)
    return get(tournament_id)


def finish_cancellations() -> int:
    """Job: refund the fees a crash left unrefunded in cancelled tournaments, and finish
    interrupted deletions. Returns the number of fees refunded."""
    p = TournamentParticipant
    ids = list(
        db.session.scalars(
            select(Tournament.id)
            .where(
                Tournament.status == "cancelled",
                Tournament.id.in_(
                    select(p.tournament_id).where(
                        p.fee_paid > 0, p.fee_refund_transaction_id.is_(None)
                    )
                ),
            )
            .order_by(Tournament.id)
        )
    )
    ids += list(
        db.session.scalars(
            select(Tournament.id).where(
                Tournament.status == "cancelled", Tournament.cancelled_reason == DELETED_REASON
            )
        )
    )
    refunded = 0
    for tid in dict.fromkeys(ids):
        refunded += refund_fees(tid)
        _purge_deleted(tid)
    return refunded


def get(tournament_id: int) -> Tournament:
    tour = db.session.get(Tournament, tournament_id)
    if tour is None:
        raise NotFound("Tournament not found")
    return tour


def active() -> list[Tournament]:
    """Running and upcoming tournaments."""
    return list(
        db.session.scalars(
            select(Tournament)
            .where(Tournament.status == "scheduled", Tournament.ends_at > utcnow())
            .order_by(Tournament.starts_at, Tournament.id)
        )
    )


def all_tournaments() -> list[Tournament]:
    return list(db.session.scalars(select(Tournament).order_by(Tournament.id.desc())))


# --------------------------------------------------------------------------- JSON


def state(tour: Tournament) -> str:
    if tour.status != "scheduled":
        return tour.status
    now = utcnow()
    if now < tour.starts_at:
        return "upcoming"
    return "running" if now < tour.ends_at else "finished"


def score_text(tour: Tournament, score: int) -> str:
    if tour.scoring == "multiplier":
        return f"{score / MULTIPLIER_SCALE:.4f}"
    return format_minor(score, tour.currency)


def as_json(tour: Tournament) -> dict[str, Any]:
    participants = db.session.scalar(
        select(func.count(TournamentParticipant.id)).where(
            TournamentParticipant.tournament_id == tour.id
        )
    )
    return {
        "id": tour.id,
        "name": tour.name,
        "description": tour.description,
        "currency": tour.currency,
        "game_ids": tour.game_ids,
        "starts_at": tour.starts_at.isoformat(),
        "ends_at": tour.ends_at.isoformat(),
        "entry": tour.entry,
        "scoring": tour.scoring,
        "min_bet": format_minor(tour.min_bet, tour.currency),
        "max_participants": tour.max_participants,
        "participants": participants,
        "entry_fee": format_minor(tour.entry_fee or 0, tour.currency),
        "prizes": [
            {"rank": i, "amount": format_minor(a, tour.currency), "type": kind}
            for i, (a, kind) in enumerate(prize_table(tour), start=1)
        ],
        "state": state(tour),
        "settled_at": tour.settled_at.isoformat() if tour.settled_at else None,
    }


def admin_json(tour: Tournament) -> dict[str, Any]:
    return {k: getattr(tour, k) for k in EDITABLE} | {"id": tour.id, "status": tour.status}


def live_board(
    tour: Tournament, user_id: int | None, limit: int, rebuild: bool = True
) -> tournament_board.Board:
    """Top ``limit`` and the caller's position: Redis while the tournament is upcoming or
    running, PostgreSQL (same order) once it has ended or whenever Redis cannot answer."""
    board = None
    if state(tour) in ("upcoming", "running"):
        board = tournament_board.read(tour.id, tour.ends_at, user_id, limit, rebuild)
    return board or tournament_board.postgres(tour.id, user_id, limit)


def _masked(name: str) -> str:
    return name[:2] + "***" if len(name) > 2 else name + "***"


def board_json(
    tour: Tournament, user_id: int | None = None, limit: int = 10, rebuild: bool = True
) -> dict[str, Any]:
    """The board as players see it; names, bets and prizes joined in one query."""
    board = live_board(tour, user_id, limit, rebuild)
    wanted = {uid for uid, _ in board.top} | ({user_id} if board.me else set())
    p = TournamentParticipant
    rows = {
        row.user_id: row
        for row in db.session.execute(
            select(p.user_id, p.bets, p.prize, User.username)
            .join(User, User.id == p.user_id)
            .where(p.tournament_id == tour.id, p.user_id.in_(wanted))
        )
    }

    def entry(rank: int, uid: int, score: int) -> dict[str, Any]:
        row = rows.get(uid)
        return {
            "rank": rank,
            "player": _masked(row.username if row else "?"),
            "score": score_text(tour, score),
            "bets": row.bets if row else 0,
            "prize": None
            if row is None or row.prize is None
            else format_minor(row.prize, tour.currency),
        }

    return {
        "tournament_id": tour.id,
        "state": state(tour),
        "top": [entry(i, uid, score) for i, (uid, score) in enumerate(board.top, start=1)],
        # ``me`` is only ever read for a caller (``tournament_board.read`` / ``postgres``).
        "me": None
        if board.me is None or user_id is None
        else entry(board.me[0], user_id, board.me[1]),
    }


def board_event(tour: Tournament) -> dict[str, Any]:
    # Pushed after a bet's commit, inside the provider's callback: no rebuild on that path.
    event = board_json(tour, None, 10, rebuild=False)
    del event["me"]
    return event
