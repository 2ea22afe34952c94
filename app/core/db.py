"""Transactions: ``atomic()`` for one business operation, ``on_commit()`` for its side effects.

Invariants:
* The outermost ``atomic()`` commits once at the end or rolls back everything on an exception.
* A nested ``atomic()`` is a SAVEPOINT: its failure rolls back only its own work.
* Callbacks registered with ``on_commit()`` run after the outermost commit succeeded, never
  after a rollback (events and jobs must not announce data that does not exist).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from flask import Flask
from sqlalchemy import BigInteger, CursorResult, Integer, Result, Table, event, func, select
from sqlalchemy.orm import Session

from app.core import prepared
from app.core.extensions import db
from app.core.routing import ATOMIC_DEPTH

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Primary keys: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements).
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

_DEPTH = ATOMIC_DEPTH
_CALLBACKS = "jx_on_commit"


def _session() -> Session:
    return db.session()


@contextmanager
def atomic() -> Iterator[Session]:
    """Run the block as one transaction (outermost) or a savepoint (nested)."""
    session = _session()
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        if depth == 0:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                session.info.pop(_CALLBACKS, None)
                raise
            callbacks = session.info.pop(_CALLBACKS, [])
            # Callbacks run outside the finished transaction: an ``atomic()`` inside one (a
            # synchronous job, an in-process webhook) must be a new outermost transaction that
            # commits, not a savepoint of the one that just ended.
            session.info[_DEPTH] = depth
            _run_callbacks(callbacks)
        else:
            marker = len(session.info.get(_CALLBACKS, []))
            with session.begin_nested():
                try:
                    yield session
                except BaseException:
                    # Side effects of the rolled-back savepoint must not fire either.
                    del session.info.get(_CALLBACKS, [])[marker:]
                    raise
    finally:
        session.info[_DEPTH] = depth


def in_atomic() -> bool:
    return _session().info.get(_DEPTH, 0) > 0


def on_commit(callback: Callable[[], Any]) -> None:
    """Run ``callback`` once the outermost ``atomic()`` has committed."""
    session = _session()
    if session.info.get(_DEPTH, 0) == 0:
        raise RuntimeError("on_commit() outside atomic(): side effects need a transaction")
    session.info.setdefault(_CALLBACKS, []).append(callback)


def _run_callbacks(callbacks: list[Callable[[], Any]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            # The data is committed; a failed notification must not turn into a failed request.
            log.exception("on_commit callback failed")


def parse_row_id(value: Any) -> int | None:
    """A row id from a request value: an int or ASCII digits, at most 18 of them (always fits
    BIGINT); ``None`` for anything else. ``str.isdigit`` is not enough: ``"²".isdigit()`` is
    true but ``int("²")`` raises, and 20 digits overflow the column (both were 500s)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or re.fullmatch(r"[0-9]{1,18}", value) is None:
        return None
    return int(value)


def _locking(model: type[T], criteria: tuple[Any, ...], refresh: bool) -> Any:
    # ``OF model``: lock only this table's row; eager-joined relationships (``User.role``) are
    # LEFT OUTER JOINs, which PostgreSQL refuses to lock.
    stmt = select(model).where(*criteria).with_for_update(of=model)
    if refresh:
        # Overwrite a copy already in the session: loaded before the lock, it may be stale.
        stmt = stmt.execution_options(populate_existing=True)
    return _session().execute(stmt).unique()


def lock_one(model: type[T], *criteria: Any, refresh: bool = False) -> T | None:
    """``SELECT ... FOR UPDATE`` one row (PostgreSQL); SQLite serializes writers anyway.
    ``refresh``: also reload a copy of the row the session already holds."""
    return _locking(model, criteria, refresh).scalar_one_or_none()


def lock_existing(model: type[T], *criteria: Any, refresh: bool = False) -> T:
    """``lock_one`` for a row that must exist (just read, created or named by a foreign key):
    a missing row raises ``NoResultFound``, as ``Session.get_one`` does."""
    return _locking(model, criteria, refresh).scalar_one()


def table_of(model: type[Any]) -> Table:
    """A declarative model's ``Table``: ``__table__`` is typed as any ``FromClause`` (a class
    may be mapped to a subquery); every model here declares ``__tablename__``."""
    table = model.__table__
    if not isinstance(table, Table):  # pragma: no cover - no model is mapped otherwise
        raise TypeError(f"{model.__name__} is not mapped to a Table")
    return table


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE/DELETE without RETURNING matched. ``Session.execute`` is typed to
    answer a ``Result`` (sqlalchemy#12913); for such a statement it is the ``CursorResult``
    that carries ``rowcount``."""
    return cast("CursorResult[Any]", result).rowcount


def first_mapping(result: Result[Any]) -> dict[str, Any] | None:
    """The first row of ``result`` as a dict, or None."""
    row = result.mappings().first()
    return None if row is None else dict(row)


def with_writes(stmt: Any, writes: list[Any]) -> Any:
    """``stmt`` (a SELECT) with each of ``writes`` (``INSERT``/``UPDATE ... RETURNING``) as a
    CTE of the same statement (PostgreSQL runs data-modifying CTEs whether or not they are
    referenced); what write ``i`` returned comes back as the columns ``w<i>_<column>`` (a write
    returns at most one row). Read them with :func:`returned_by_writes`."""
    columns = []
    for i, write in enumerate(writes):
        cte = write.cte(f"write_{i}")
        stmt = stmt.add_cte(cte)
        columns += [select(col).scalar_subquery().label(f"w{i}_{col.key}") for col in cte.c]
    return stmt.add_columns(*columns)


def returned_by_writes(row: Any, count: int) -> tuple[dict[str, Any] | None, ...]:
    """Per write of :func:`with_writes`, what it returned (``None``: no row)."""
    values = row._mapping
    out: list[dict[str, Any] | None] = []
    for i in range(count):
        prefix = f"w{i}_"
        got = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        out.append(got if any(v is not None for v in got.values()) else None)
    return tuple(out)


def core_execute(stmt: Any, params: Any = None) -> Any:
    """``stmt`` (a Core statement: it loads no ORM entities) on the session's connection, in
    its transaction, past the ORM's execute layer (~0.15 ms of CPU a statement: the money hot
    path's statements). The session is flushed first, as ``Session.execute`` would autoflush,
    so the statement sees every pending change. On PostgreSQL the statement is prepared once
    per connection, and a statement built once (``prepared.HOT``) runs on the DBAPI cursor
    after its first execution (``core.prepared``)."""
    session = _session()
    if session.autoflush:
        session.flush()
    return prepared.execute_hot(session.connection(), stmt, params or {})


def dialect_insert(table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the session's database (PostgreSQL, SQLite)."""
    from sqlalchemy.dialects import postgresql, sqlite

    name = _session().get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def page_of(query: Any, *order_by: Any, page: int, limit: int) -> tuple[list[Any], int]:
    """One page of ``query`` (1-based) in ``order_by`` order, and how many rows match in all."""
    session = _session()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(*order_by).offset((page - 1) * limit).limit(limit))
    return list(rows), int(total)


# --- timeouts --------------------------------------------------------------------------------

#: "interactive" (web process) or "jobs" (worker.py, ``flask jackpotx``): which pair of
#: DB_*_TIMEOUT_MS settings a new PostgreSQL connection starts with.
_timeout_profile = {"name": "interactive"}


def use_job_timeouts() -> None:
    """Long timeouts for this process's connections from now on (a worker, an operator
    command); ``use_interactive_timeouts`` switches back."""
    _timeout_profile["name"] = "jobs"


def use_interactive_timeouts() -> None:
    _timeout_profile["name"] = "interactive"


def install_timeouts(app: Flask) -> None:
    """Every PostgreSQL connection runs with ``lock_timeout`` and ``statement_timeout``: a
    held row lock or a runaway query fails its transaction (SQLSTATE 55P03 / 57014, a
    retryable outage for ``errors.outage_kind``) instead of freezing the worker. Set when the
    pool opens a connection, and again at checkout only if the process switched profile
    since (an operator command run in-process): the callback hot path pays no round trip.
    The read replica's engine (``DATABASE_REPLICA_URL``) gets the same settings."""
    for engine in db.engines.values():
        if engine.dialect.name == "postgresql":
            _install_timeouts(app, engine)


def _install_timeouts(app: Flask, engine: Any) -> None:
    config = app.config

    def apply(dbapi_connection: Any, record: Any) -> None:
        profile = _timeout_profile["name"]
        prefix = "DB_JOB_" if profile == "jobs" else "DB_"
        lock_ms = int(config[f"{prefix}LOCK_TIMEOUT_MS"])
        statement_ms = int(config[f"{prefix}STATEMENT_TIMEOUT_MS"])
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET lock_timeout = {lock_ms}; SET statement_timeout = {statement_ms}")
        finally:
            cursor.close()
        # A SET outside a transaction block still opened one under psycopg2's default.
        dbapi_connection.commit()
        record.info["jx_timeouts"] = profile

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        apply(dbapi_connection, record)

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("jx_timeouts") != _timeout_profile["name"]:
            apply(dbapi_connection, record)
