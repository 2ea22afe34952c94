"""Status machines: one table of allowed transitions per object whose status moves money or
rights (payments, game rounds, KYC submissions, tournaments, bonuses).

Each domain declares its machine beside its model and changes a status only through
``machine.move(row, to)``; SQL that moves rows in bulk filters on ``machine.sources(to)``, so
the table is the one place that says what may follow what. A move the table does not allow
raises ``IllegalTransition`` (409 in the standard envelope): the caller's transaction rolls
back and nothing is written. Domain code still checks first where it owes the caller a more
specific refusal; the machine is the guarantee behind those checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.core.errors import Conflict


class IllegalTransition(Conflict):
    message = "This change is not allowed in the current state"


class StateMachine:
    def __init__(self, name: str, transitions: Mapping[str, Iterable[str]]) -> None:
        self.name = name
        self.transitions = {state: frozenset(nxt) for state, nxt in transitions.items()}
        self.states = frozenset(self.transitions) | frozenset().union(*self.transitions.values())

    def allows(self, current: str, to: str) -> bool:
        return to in self.transitions.get(current, ())

    def sources(self, to: str) -> tuple[str, ...]:
        """Every status ``to`` may follow (the WHERE of a bulk ``UPDATE``)."""
        return tuple(sorted(s for s, nxt in self.transitions.items() if to in nxt))

    def check(self, current: str, to: str) -> None:
        if not self.allows(current, to):
            raise IllegalTransition(f"A {self.name} cannot go from {current} to {to}")

    def move(self, row: Any, to: str) -> None:
        """Set ``row.status`` to ``to``, or raise ``IllegalTransition`` and change nothing."""
        self.check(row.status, to)
        row.status = to
