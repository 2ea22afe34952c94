"""What other domains learn about play: inside the callback's money transaction, or after it.

Bonus wagering, tournament scores, jackpot contributions and loyalty points all follow the
stakes and wins the wallet accepted. They register a listener here instead of editing the
callback service.

Invariants:
* Listeners that move money (bonus wagering, jackpot contributions) run after the wallet
  posting, in the same transaction: what they write commits or rolls back with the money (a
  wagering step can never exist without its bet).
* Listeners registered ``after_commit=True`` (loyalty points, tournament scores) move no money
  and run after the callback committed, in their own transaction, in commit order: in the
  request once the view returned (``PLAY_AFTER_COMMIT=inline``, the default: tests, SQLite; at
  once outside a request) or from a per-process queue drained in batches by one background
  thread (``background``, production). They must
  be idempotent by the event's ``transaction_id`` (our claim id): a queue lost in a crash is
  redone by the owner's periodic sweep, and the sweep may meet an event the queue also ran. A
  reversal that runs before its bet's after-commit work must apply the bet first.
* They must be cheap (this is the hottest path) and must not raise for business reasons:
  an exception aborts the callback with INTERNAL_ERROR and the provider retries it.
  Work that can wait (leaderboard pushes, notifications) goes through ``on_commit``.
* Replayed callbacks never reach listeners: only a movement that was applied does.
* A listener that has nothing to do for most bets (no bonus being wagered, no jackpot pool or
  running tournament in the currency) declares a ``wanted`` probe: a SQL boolean the bet
  callback evaluates in a statement it sends anyway, after the wallet lock (the round upsert's
  ``RETURNING``), so it sees what the listener's own read would see. A bet whose probe says
  false skips the listener; every other event (reversals, a caller that evaluated no probe)
  reaches it as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, after_this_request, current_app, has_request_context, request
from sqlalchemy import ColumnElement, bindparam

from app.core.base import UTCDateTime
from app.core.batchqueue import BatchQueue, PerApp
from app.core.db import atomic, on_commit

log = logging.getLogger(__name__)
_PENDING = "jackpotx.play_after_commit"
#: Inline events of a request served outside Flask's request cycle (the callback lane):
#: run once its answer is built, as ``after_this_request`` does for a Flask request.
_lane_pending: ContextVar[list[PlayEvent] | None] = ContextVar(
    "jackpotx_play_lane_pending", default=None
)


@contextmanager
def after_answer() -> Iterator[None]:
    """A request served without Flask's request cycle: inline after-commit events wait for the
    end of this block (the answer built, the per-player gate left), then run."""
    pending: list[PlayEvent] = []
    token = _lane_pending.set(pending)
    try:
        yield
    finally:
        _lane_pending.reset(token)
        if pending:
            run_after_commit(pending)


@dataclass(frozen=True, slots=True)
class PlayEvent:
    #: "bet", "win", "refund" (a stake back) or "rollback" (a bet or win undone)
    kind: str
    user_id: int
    currency: str
    #: Minor units moved by this event, always ≥ 0 (direction follows from ``kind``).
    amount: int
    cash_part: int
    bonus_part: int
    provider_id: int
    game_id: int | None
    #: Provider's round id and our provider-transaction id (the callback claim).
    round_id: str | None
    transaction_id: int
    #: For refund/rollback: which action was undone ("bet" or "win").
    reverses: str | None = None
    #: For refund/rollback: our provider-transaction id of the undone bet or win.
    reverses_transaction_id: int | None = None
    #: Listeners whose ``wanted`` probe, answered with this bet, said they have nothing to do.
    not_wanted: frozenset[Callable[..., None]] = field(
        default=frozenset(), compare=False, repr=False
    )


Listener = Callable[[PlayEvent], None]
#: ``wanted(user_id, currency, game_id, now)`` (bind parameters in) -> a SQL boolean: may the
#: listener have anything to do for a bet of this player, in this currency, on this game, now?
Wanted = Callable[[Any, Any, Any, Any], ColumnElement[bool]]
_listeners: list[Listener] = []
_wanted: dict[Listener, Wanted] = {}
#: Listeners that move no money: called after the callback committed (see the module doc).
_after_commit: list[Listener] = []


#: An after-commit listener's batch form: does for a list of events, in one transaction, what
#: calling the listener on each of them in order would (fewer statements per event).
BatchListener = Callable[[list[PlayEvent]], None]
_batch: dict[Listener, BatchListener] = {}


def register(
    listener: Listener,
    *,
    wanted: Wanted | None = None,
    after_commit: bool = False,
    batch: BatchListener | None = None,
) -> None:
    if after_commit:
        if listener not in _after_commit:
            _after_commit.append(listener)
        if batch is not None:
            _batch[listener] = batch
        return
    if listener not in _listeners:
        _listeners.append(listener)
    if wanted is not None:
        _wanted[listener] = wanted


def unregister(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)
    if listener in _after_commit:
        _after_commit.remove(listener)
    _wanted.pop(listener, None)
    _batch.pop(listener, None)


def wanted_columns() -> list[ColumnElement[Any]]:
    """The bet probes, labelled ``wanted_<n>``, over the bind parameters ``e_user_id``,
    ``e_currency``, ``e_game_id`` and ``e_now`` (see :func:`wanted_params`)."""
    args: tuple[Any, ...] = (
        bindparam("e_user_id"),
        bindparam("e_currency"),
        bindparam("e_game_id"),
        bindparam("e_now", type_=UTCDateTime()),
    )
    return [
        _wanted[listener](*args).label(f"wanted_{i}")
        for i, listener in enumerate(_listeners)
        if listener in _wanted
    ]


def wanted_params(user_id: int, currency: str, game_id: int | None, now: Any) -> dict[str, Any]:
    return {"e_user_id": user_id, "e_currency": currency, "e_game_id": game_id, "e_now": now}


def wanted_key() -> tuple[int, ...]:
    """Changes when the probes do (a statement built with :func:`wanted_columns` caches by it)."""
    return tuple(i for i, listener in enumerate(_listeners) if listener in _wanted)


def not_wanted(row: Any) -> frozenset[Listener]:
    """The listeners whose probe in ``row`` (a result row, or a mapping, of a statement with
    :func:`wanted_columns`) said no: for :attr:`PlayEvent.not_wanted`."""
    values = getattr(row, "_mapping", row)
    return frozenset(
        listener
        for i, listener in enumerate(_listeners)
        if listener in _wanted and not values[f"wanted_{i}"]
    )


def emit(event: PlayEvent) -> None:
    """Call every listener in order, but those the bet's probes said no for; hand the event
    to the after-commit listeners once the caller's transaction committed."""
    for listener in _listeners:
        if listener not in event.not_wanted:
            listener(event)
    if _after_commit:
        # Per event (not per transaction): a rolled-back savepoint drops its own events.
        on_commit(lambda: _dispatch(event))


def _dispatch(event: PlayEvent) -> None:
    lane = _lane_pending.get()
    if lane is not None and not has_request_context():
        if current_app.config.get("PLAY_AFTER_COMMIT", "inline") == "background":
            _drainer(current_app._get_current_object()).submit(event)  # type: ignore[attr-defined]
        else:
            lane.append(event)
        return
    if not has_request_context():
        # A job or an operator command: nothing waits on it, and an RQ work-horse exits
        # right after its job (a queue would be left to the sweep).
        run_after_commit([event])
    elif current_app.config.get("PLAY_AFTER_COMMIT", "inline") == "background":
        _drainer(current_app._get_current_object()).submit(event)  # type: ignore[attr-defined]
    else:
        # Inline, once the view returned: not inside what the view still holds after its
        # commit (a callback's per-player gate), so a player's next callback does not wait
        # for this one's loyalty work.
        pending = request.environ.get(_PENDING)
        if pending is None:
            pending = request.environ[_PENDING] = []

            @after_this_request
            def _run(response: Response) -> Response:
                run_after_commit(pending)
                return response

        pending.append(event)


def run_after_commit(events: list[PlayEvent]) -> None:
    """Run the after-commit listeners over ``events`` in one transaction: each listener sees
    every event in order (its batch form once, if it has one; the listeners share no rows).
    If the batch fails, each event in its own, so one bad event does not hold back the others
    (what still fails is logged and left to the owner's sweep)."""
    try:
        with atomic():
            for listener in _after_commit:
                batch = _batch.get(listener)
                if batch is not None:
                    batch(events)
                    continue
                for event in events:
                    listener(event)
        return
    except Exception:
        if len(events) == 1:
            log.exception("after-commit play listener failed (the sweep will redo it)")
            return
    for event in events:
        run_after_commit([event])


def _left_to_sweep(_event: PlayEvent) -> None:
    """A full queue: the event is left to its owners' sweeps (they redo what never ran)."""


#: Per process and app: committed events applied in batches of up to 200, in commit order,
#: 50 ms after the first (a quiet stream is applied a few at a time: one transaction and one
#: statement per listener for several events); past 20,000 waiting, left to the sweeps.
_drainers: PerApp[PlayEvent] = PerApp(
    lambda app: BatchQueue(
        app,
        run_after_commit,
        name="jx-play-after-commit",
        batch=200,
        limit=20_000,
        linger=0.05,
        overflow=_left_to_sweep,
    )
)


def drain(timeout: float = 5.0) -> bool:
    """Wait (at most ``timeout`` seconds) until this process's after-commit queues are empty
    and idle: for a worker that is about to exit (gunicorn's ``worker_exit``) and for tools.
    True when drained; what is left otherwise is redone by the owners' sweeps."""
    return _drainers.drain(timeout)


def _drainer(app: Flask) -> BatchQueue[PlayEvent]:
    return _drainers.get(app)
