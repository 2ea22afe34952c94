"""Who may play and stake: the hook the responsible-gaming (compliance) domain fills in.

Invariants: called before any money moves (``check_bet_allowed`` on every bet callback,
``check_play_allowed`` on every launch); refusing raises a domain error and writes nothing.
Checks must stay cheap: they run on the hottest path of the platform. Other domains add
their rules with ``register_bet_check`` / ``register_play_check`` instead of editing this file.

A bet check that needs to read the database first declares a *probe*: SQL expressions over the
player, the currency and the time, which the caller evaluates in a statement it sends anyway
(the bet callback: its session lookup) and hands to the check as ``probed``; a caller with
nothing to merge them into gets them from :func:`probe_values` in one statement for all checks.
The probe is read at the same point of the bet as the check itself (before the wallet lock),
so a ban, exclusion, limit or bonus granted before the bet still applies to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, select

from app.core.base import UTCDateTime, utcnow
from app.core.errors import AppError
from app.core.extensions import db

BLOCKED_STATUSES = frozenset({"suspended", "banned", "closed"})


class PlayerBlocked(AppError):
    status, code, message = 403, "PLAYER_BLOCKED", "This account may not play"


BetCheck = Callable[..., None]
PlayCheck = Callable[[int], None]
#: ``probe(user_id, currency, now)`` -> SQL expressions (columns or bind parameters in,
#: a tuple of scalar expressions out) whose values the check receives as ``probed``.
Probe = Callable[[Any, Any, Any], tuple[ColumnElement[Any], ...]]
_bet_checks: list[BetCheck] = []
_probes: dict[BetCheck, Probe] = {}
_play_checks: list[PlayCheck] = []


def register_bet_check(check: BetCheck, *, probe: Probe | None = None) -> None:
    """``check(user_id, amount_minor, currency)`` raises (e.g. ``LimitExceeded``) to refuse;
    with a ``probe`` it is called ``check(user_id, amount_minor, currency, probed=values)``."""
    if check not in _bet_checks:
        _bet_checks.append(check)
    if probe is not None:
        _probes[check] = probe


def probe_columns(user_id: Any, currency: Any, now: Any) -> list[ColumnElement[Any]]:
    """Every registered probe's expressions, labelled ``probe_<check>_<n>``, in check order:
    for the caller to add to a statement it sends anyway (see :func:`probed_from`)."""
    columns: list[ColumnElement[Any]] = []
    for i, check in enumerate(_bet_checks):
        if check in _probes:
            for n, expr in enumerate(_probes[check](user_id, currency, now)):
                columns.append(expr.label(f"probe_{i}_{n}"))
    return columns


def now_param() -> Any:
    """The ``now`` a probe compares with: Python's clock (as the checks use), bound as ``g_now``."""
    return bindparam("g_now", type_=UTCDateTime())


def probes_key() -> tuple[int, ...]:
    """Changes when the probes do (a statement built with :func:`probe_columns` caches by it)."""
    return tuple(i for i, check in enumerate(_bet_checks) if check in _probes)


def probed_from(row: Any) -> dict[BetCheck, Sequence[Any]]:
    """The probe values in ``row`` (a result row of a statement with :func:`probe_columns`)."""
    values = row._mapping
    out: dict[BetCheck, Sequence[Any]] = {}
    for i, check in enumerate(_bet_checks):
        if check in _probes:
            prefix = f"probe_{i}_"
            out[check] = tuple(v for k, v in values.items() if k.startswith(prefix))
    return out


def probe_values(user_id: int, currency: str) -> dict[BetCheck, Sequence[Any]]:
    """The probes, in one statement, for a caller that has no statement to merge them into."""
    if not _probes:
        return {}
    stmt = select(*probe_columns(bindparam("g_user_id"), bindparam("g_currency"), now_param()))
    row = db.session.execute(
        stmt, {"g_user_id": user_id, "g_currency": currency, "g_now": utcnow()}
    ).one()
    return probed_from(row)


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
    user_id: int,
    amount: int,
    currency: str,
    status: str,
    status_until: datetime | None = None,
    *,
    probed: dict[BetCheck, Sequence[Any]] | None = None,
) -> None:
    """Raise ``PlayerBlocked`` or a limit error if this stake may not be placed.

    ``probed``: the probes' values, read by the caller with :func:`probe_columns` in the
    statement that read the player; read here otherwise."""
    if status_blocks(status, status_until):
        raise PlayerBlocked()
    if probed is None and _probes:
        probed = probe_values(user_id, currency)
    for check in _bet_checks:
        if check in _probes:
            check(user_id, amount, currency, probed=(probed or {})[check])
        else:
            check(user_id, amount, currency)
