"""Who may play and stake: the hook the responsible-gaming (compliance) domain fills in.

Invariants: called before any money moves (``check_bet_allowed`` on every bet callback,
``check_play_allowed`` on every launch); refusing raises a domain error and writes nothing.
Checks must stay cheap: they run on the hottest path of the platform. Other domains add
their rules with ``register_bet_check`` / ``register_play_check`` instead of editing this file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from app.core.base import utcnow
from app.core.errors import AppError

BLOCKED_STATUSES = frozenset({"suspended", "banned", "closed"})


class PlayerBlocked(AppError):
    status, code, message = 403, "PLAYER_BLOCKED", "This account may not play"


BetCheck = Callable[[int, int, str], None]
PlayCheck = Callable[[int], None]
_bet_checks: list[BetCheck] = []
_play_checks: list[PlayCheck] = []


def register_bet_check(check: BetCheck) -> None:
    """``check(user_id, amount_minor, currency)`` raises (e.g. ``LimitExceeded``) to refuse."""
    if check not in _bet_checks:
        _bet_checks.append(check)


def register_play_check(check: PlayCheck) -> None:
    if check not in _play_checks:
        _play_checks.append(check)


def status_blocks(status: str, status_until: datetime | None) -> bool:
    """A suspension with an end date in the past no longer blocks play."""
    if status not in BLOCKED_STATUSES:
        return False
    return not (status == "suspended" and status_until is not None and status_until <= utcnow())


def check_play_allowed(user_id: int, status: str, status_until: datetime | None = None) -> None:
    if status_blocks(status, status_until):
        raise PlayerBlocked()
    for check in _play_checks:
        check(user_id)


def check_bet_allowed(
    user_id: int, amount: int, currency: str, status: str, status_until: datetime | None = None
) -> None:
    """Raise ``PlayerBlocked`` or a limit error if this stake may not be placed."""
    if status_blocks(status, status_until):
        raise PlayerBlocked()
    for check in _bet_checks:
        check(user_id, amount, currency)
