"""What other domains learn about play, inside the callback's money transaction.

Bonus wagering, tournament scores, jackpot contributions and loyalty points all follow the
stakes and wins the wallet accepted. They register a listener here instead of editing the
callback service.

Invariants:
* Listeners run after the wallet posting, in the same transaction: what they write commits
  or rolls back with the money (a wagering step can never exist without its bet).
* They must be cheap (this is the hottest path) and must not raise for business reasons:
  an exception aborts the callback with INTERNAL_ERROR and the provider retries it.
  Work that can wait (leaderboard pushes, notifications) goes through ``on_commit``.
* Replayed callbacks never reach listeners: only a movement that was applied does.
* A listener that has nothing to do for most bets (no bonus being wagered, no jackpot pool or
  running tournament in the currency) declares a ``wanted`` probe: a SQL boolean the bet
  callback evaluates in a statement it sends anyway, after the wallet lock (the round upsert's
  ``RETURNING``), so it sees what the listener's own read would see. A bet whose probe says
  false skips the listener; every other event (wins, reversals, a caller that evaluated no
  probe) reaches it as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, bindparam

from app.core.base import UTCDateTime


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


def register(listener: Listener, *, wanted: Wanted | None = None) -> None:
    if listener not in _listeners:
        _listeners.append(listener)
    if wanted is not None:
        _wanted[listener] = wanted


def unregister(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)
    _wanted.pop(listener, None)


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
    """The listeners whose probe in ``row`` (a result row of a statement with
    :func:`wanted_columns`) said no: for :attr:`PlayEvent.not_wanted`."""
    values = row._mapping
    return frozenset(
        listener
        for i, listener in enumerate(_listeners)
        if listener in _wanted and not values[f"wanted_{i}"]
    )


def emit(event: PlayEvent) -> None:
    """Call every listener in order, but those the bet's probes said no for."""
    for listener in _listeners:
        if listener not in event.not_wanted:
            listener(event)
