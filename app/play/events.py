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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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


Listener = Callable[[PlayEvent], None]
_listeners: list[Listener] = []


def register(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def unregister(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def emit(event: PlayEvent) -> None:
    for listener in _listeners:
        listener(event)
