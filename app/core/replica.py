"""The read replica: reports, analytics and exports read a streaming standby of the primary
when ``DATABASE_REPLICA_URL`` is set (``docs/console.md``, "Read replica").

Report code says "this may read the replica" with :func:`reads` (a context manager) or
:func:`reads_replica` (a decorator). Inside, the plain SELECTs of ``db.session`` run on the
replica (``app.core.routing``); everything else stays on the primary.

Invariants:
* The money path never reads the replica: inside ``atomic()`` a block reads the primary (a
  transaction must see its own writes and lock what it reads), and locking reads and every
  write are routed to the primary anyway.
* Unset ``DATABASE_REPLICA_URL``: a block is a no-op, every statement reads the primary.
* A replica that refuses connections, or whose replay is more than ``REPLICA_MAX_LAG_SECONDS``
  behind what it received, is not used: the block reads the primary and one warning per
  ``REPLICA_CHECK_SECONDS`` says why (a report is slower, never wrong or missing). The verdict
  is kept per process for ``REPLICA_CHECK_SECONDS``: a block costs no round trip in between.
* A block that used the replica ends the session's (read-only) transaction when it exits:
  the replica connection is returned at once, and objects it loaded are expired (a later
  access reloads them from the primary).
* A replica that dies in the middle of a report fails that request like any database outage
  (503 through ``app.core.errors``); the next check skips it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from flask import current_app

from app.core import metrics
from app.core.db import in_atomic
from app.core.extensions import db
from app.core.routing import ATOMIC_DEPTH, replica_engine

log = logging.getLogger(__name__)

BIND = "replica"

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds the replica's replay is behind what it received (0: caught up). ``NULL`` (nothing
#: replayed since it started, while WAL waits) counts as unknown: not used.
LAG_SQL = sa.text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0"
    " WHEN pg_last_wal_receive_lsn() IS NULL"
    "  OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END"
)


@dataclass
class Verdict:
    usable: bool
    reason: str  #: "ok", "down" or "lagging"
    lag: float | None
    checked_at: float


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Per engine (one per app): the last verdict.
        self.verdicts: dict[int, Verdict] = {}


_state = _State()


def configured() -> bool:
    return bool(current_app.config.get("DATABASE_REPLICA_URL"))


def engine() -> sa.Engine | None:
    """The replica engine of this app (``None``: no replica configured)."""
    if not configured():
        return None
    return db.engines[BIND]


def measure(replica: sa.Engine) -> float:
    """The replica's replay lag in seconds (0 when it is caught up); raises when it is down."""
    with replica.connect() as conn:
        if replica.dialect.name != "postgresql":
            conn.execute(sa.text("SELECT 1"))
            return 0.0
        lag = conn.execute(LAG_SQL).scalar()
    return float("inf") if lag is None else max(0.0, float(lag))


def check(replica: sa.Engine, *, force: bool = False) -> Verdict:
    """Whether ``replica`` may serve reads now (cached for ``REPLICA_CHECK_SECONDS``)."""
    config = current_app.config
    now = time.monotonic()
    key = id(replica)
    with _state.lock:
        last = _state.verdicts.get(key)
    if not force and last and now - last.checked_at < float(config["REPLICA_CHECK_SECONDS"]):
        return last
    max_lag = float(config["REPLICA_MAX_LAG_SECONDS"])
    try:
        lag: float | None = measure(replica)
    except sa.exc.SQLAlchemyError as exc:
        verdict = Verdict(False, "down", None, now)
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    else:
        assert lag is not None
        usable = lag <= max_lag
        verdict = Verdict(usable, "ok" if usable else "lagging", lag, now)
        detail = f"{lag:.1f} s behind, at most {max_lag:.0f} s allowed"
    if not verdict.usable:
        metrics.replica_skipped(verdict.reason)
        if last is None or last.usable or last.reason != verdict.reason:
            log.warning(
                "read replica %s (%s): reports read the primary for the next %s s",
                verdict.reason,
                detail,
                config["REPLICA_CHECK_SECONDS"],
            )
    elif last is not None and not last.usable:
        log.warning("read replica back (%.1f s behind): reports read it again", lag)
    with _state.lock:
        _state.verdicts[key] = verdict
    return verdict


def forget() -> None:
    """Drop the cached verdicts (tests; an operator command after fixing the replica)."""
    with _state.lock:
        _state.verdicts.clear()


@contextmanager
def reads() -> Iterator[bool]:
    """Run the block's plain SELECTs on the replica when one is configured and usable.
    Yields whether the replica serves them (``False``: the primary does)."""
    current = replica_engine.get()
    if current is not None:  # nested in another block: already decided
        yield True
        return
    replica = engine()
    target = None
    if replica is not None and not in_atomic():
        target = replica if check(replica).usable else None
    token = replica_engine.set(target)
    try:
        yield target is not None
    finally:
        replica_engine.reset(token)
        if target is not None:
            _release()


def _release() -> None:
    """End the session's read transaction so the replica connection goes back to its pool at
    once (not at the end of the request), and no later commit of the session waits on it.
    Only outside ``atomic()``: nothing uncommitted is lost (writes happen in transactions)."""
    session = db.session()
    if not session.info.get(ATOMIC_DEPTH):
        session.rollback()


def reads_replica(fn: F) -> F:
    """Decorator: ``fn``'s reads may come from the replica (see :func:`reads`)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with reads():
            return fn(*args, **kwargs)

    return cast(F, wrapper)


def status() -> dict[str, Any]:
    """What staff and ``/health``-style pages can show: configured, usable, why, lag."""
    replica = engine()
    if replica is None:
        return {"configured": False}
    verdict = check(replica)
    return {
        "configured": True,
        "usable": verdict.usable,
        "reason": verdict.reason,
        "lag_seconds": verdict.lag,
    }
