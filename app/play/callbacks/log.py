"""The callback log: every callback's request, verdict and answer, written on every path.

Invariants: a callback is logged exactly once per request, in the transaction of its money
movement when it applied one (the log row exists iff the money moved), or in its own when it
was refused; the log is how staff and ``replay`` see what a provider asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from flask import g, has_request_context
from sqlalchemy import bindparam, func, insert, select

from app.core.base import utcnow
from app.core.db import atomic, table_of
from app.core.extensions import db
from app.core.observability import correlation_id
from app.play.callbacks.protocol import CallbackRequest, CallbackResult
from app.play.models import ProviderCallback
from app.wallet.ledger import Companion, hot_statement

log = logging.getLogger(__name__)


def refuse(
    provider_code: str,
    req: CallbackRequest,
    code: str,
    message: str,
    *,
    signature_valid: bool,
    remote_ip: str | None,
    started: float,
    reason: str | None = None,
) -> CallbackResult:
    """Answer (and log) a callback refused before it reached an action: signature, IP."""
    result = CallbackResult("error", code=code, message=message, reason=reason)
    try:
        with atomic():
            record(provider_code, req, result, started, signature_valid, remote_ip, None)
    except Exception as exc:
        # The refusal is final and moved nothing: it goes out even if the log is down.
        db.session.rollback()
        log.error("refused callback from %s not logged: %s", provider_code, type(exc).__name__)
    return result


def record(
    provider_code: str,
    req: CallbackRequest,
    result: CallbackResult,
    started: float,
    signature_valid: bool,
    remote_ip: str | None,
    replay_of: int | None,
) -> None:
    db.session.execute(
        hot_statement("seamless.log", _build_log),
        _row(provider_code, req, result, started, signature_valid, remote_ip, replay_of),
    )


def _row(
    provider_code: str,
    req: CallbackRequest,
    result: CallbackResult,
    started: float,
    signature_valid: bool,
    remote_ip: str | None,
    replay_of: int | None,
) -> dict[str, Any]:
    corr = g.get("correlation_id") if has_request_context() else None
    return {
        "provider_code": provider_code[:32],
        "action": (req.action or None) and str(req.action)[:32],
        "transaction_id": _short(req.transaction_id),
        "round_id": _short(req.round_id),
        "user_id": result.user_id,
        "payload": req.payload,
        "verdict": "ok" if result.ok else (result.code or "ERROR"),
        "response": result.as_native() if result.currency or not result.ok else None,
        "signature_valid": signature_valid,
        "duplicate": result.duplicate,
        "balance_before": result.balance_before,
        "balance_after": result.balance,
        "latency_ms": _latency_ms(started),
        "correlation_id": corr or (correlation_id.get() if correlation_id.get() != "-" else None),
        "remote_ip": remote_ip,
        "replay_of_id": replay_of,
        "created_at": utcnow(),
    }


def _build_log(_insert: Any) -> Any:
    return insert(table_of(ProviderCallback))


# --- the log row that rides with the money movement -----------------------------------------


@dataclass
class Pending:
    """The log row of the callback being handled, not written yet: a money action whose
    answer is known before its posting hands it to the posting (:func:`companions`), so it
    costs no round trip of its own; otherwise the handler records it after the action."""

    provider_code: str
    req: CallbackRequest
    started: float
    signature_valid: bool
    remote_ip: str | None
    replay_of: int | None
    #: May the row ride with a posting? (Not for a batch: several postings, one row.)
    rides: bool = True
    written: bool = False


_pending: ContextVar[Pending | None] = ContextVar("jackpotx_callback_log_pending", default=None)


@contextmanager
def pending(
    provider_code: str,
    req: CallbackRequest,
    started: float,
    signature_valid: bool,
    remote_ip: str | None,
    replay_of: int | None,
    *,
    rides: bool = True,
) -> Iterator[Pending]:
    """While the action runs, its log row may ride with its posting (``rides``); afterwards,
    check ``written`` and :func:`record` it if it did not (in the same transaction)."""
    entry = Pending(provider_code, req, started, signature_valid, remote_ip, replay_of, rides)
    token = _pending.set(entry)
    try:
        yield entry
    finally:
        _pending.reset(token)


def companions(result: CallbackResult) -> tuple[Companion, ...]:
    """The pending log row, answering ``result``, as a companion of the posting that is about
    to move this callback's money (nothing when no row is pending or it is already written).
    The caller must answer exactly ``result``; if the posting fails the transaction rolls the
    row back and the handler logs what it answers instead. Its ``latency_ms`` is measured up
    to the posting (not its round trip and the commit)."""
    entry = _pending.get()
    if entry is None or entry.written or not entry.rides:
        return ()
    entry.written = True
    row = _row(
        entry.provider_code,
        entry.req,
        result,
        entry.started,
        entry.signature_valid,
        entry.remote_ip,
        entry.replay_of,
    )
    return (Companion("seamless.log", _build_log_companion, {f"l_{k}": v for k, v in row.items()}),)


def pending_duplicate_row() -> dict[str, Any] | None:
    """The pending log row's columns for a duplicate answered by the session read itself
    (``actions``: PostgreSQL, a bet or win whose claim is read with its session), prefixed
    ``d_``; the read's SQL fills what it knows (``user_id``, ``balance_after``, ``response``).
    ``None`` when no row is pending, it is written or it may not ride (a batch)."""
    entry = _pending.get()
    if entry is None or entry.written or not entry.rides:
        return None
    row = _row(
        entry.provider_code,
        entry.req,
        CallbackResult("ok", duplicate=True),
        entry.started,
        entry.signature_valid,
        entry.remote_ip,
        entry.replay_of,
    )
    return {f"d_{k}": v for k, v in row.items() if k not in _FILLED_BY_READ}


#: Columns of a duplicate's log row that the session read computes from the claim.
_FILLED_BY_READ = frozenset({"user_id", "balance_after", "response"})


def mark_written() -> None:
    """The pending row was written by a statement of the action's own (the duplicate read)."""
    entry = _pending.get()
    if entry is not None:
        entry.written = True


def _build_log_companion(dialect_insert: Any) -> Any:
    t = table_of(ProviderCallback)
    return (
        insert(t)
        .values({name: bindparam(f"l_{name}", type_=t.c[name].type) for name in _LOG_COLUMNS})
        .returning(t.c.id)
    )


#: What :func:`_row` fills: every column but the key.
_LOG_COLUMNS = tuple(c.name for c in table_of(ProviderCallback).c if c.name != "id")


def _latency_ms(started: float) -> float:
    """Milliseconds since ``started``, capped to what the column holds (Numeric(10, 3))."""
    return min(round((time.perf_counter() - started) * 1000, 3), _LATENCY_CAP_MS)


_LATENCY_CAP_MS = 9_999_999.999


def _short(value: Any) -> str | None:
    return None if value is None else str(value)[:100]


def callback_log(
    *,
    provider: str | None = None,
    action: str | None = None,
    verdict: str | None = None,
    user_id: int | None = None,
    transaction_id: str | None = None,
    round_id: str | None = None,
    date_from: Any = None,
    date_to: Any = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[ProviderCallback], int]:
    c = ProviderCallback
    stmt = select(c)
    for column, value in (
        (c.provider_code, provider),
        (c.action, action),
        (c.verdict, verdict),
        (c.user_id, user_id),
        (c.transaction_id, transaction_id),
        (c.round_id, round_id),
    ):
        if value is not None and value != "":
            stmt = stmt.where(column == value)
    if date_from is not None:
        stmt = stmt.where(c.created_at >= date_from)
    if date_to is not None:
        stmt = stmt.where(c.created_at < date_to)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(stmt.order_by(c.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), int(total or 0)
