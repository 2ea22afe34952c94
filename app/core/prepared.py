"""Server-side prepared statements for the money hot path (PostgreSQL).

psycopg2 sends every statement as text, so PostgreSQL parses and plans each one on every
execution. The callback path's statements are large CTEs (the session read with its probes,
claim + lock, the posting with its companions): planning them cost ~1.5 ms of the database's
CPU a bet, more than executing them (``docs/perf.md``). A statement executed with the execution
option ``jx_prepare`` (``core.db.core_execute`` sets it) is instead ``PREPARE``d once per
database connection and sent as ``EXECUTE name(<parameters>)``: PostgreSQL reuses the parse and,
after its first five runs, a generic plan (``plan_cache_mode`` stays ``auto``: it keeps
planning per value only when that is clearly cheaper).

Invariants:
* The same SQL, parameters and transaction: only the way the text reaches the server changes.
  SQLAlchemy still binds the parameters and reads the result (the columns are the same).
* Parameter types are inferred by PostgreSQL from their place in the statement (``unknown``),
  as it infers the type of psycopg2's quoted literals. A statement PostgreSQL cannot prepare
  that way is prepared with the types SQLAlchemy knows; one it still refuses runs as text,
  once logged. The ``PREPARE`` runs in a savepoint, so a refusal never aborts the caller's
  transaction. psycopg2 does not quote numbers, so a bare parameter a prepared statement
  only *selects* (``SELECT $1``) reads as text where the text statement read a number: a
  statement run here casts what it selects from a parameter (``CAST(:x AS BIGINT)``);
  parameters compared with, or inserted into, a column take the column's type.
* A connection that lost its prepared statements (``DISCARD ALL`` by a proxy, SQLSTATE 26000)
  or whose statement's result shape changed under it (0A000 after a migration) is invalidated:
  the error is a retryable outage and the next connection prepares again.
* ``DB_PREPARED_STATEMENTS=false`` turns it off (a transaction-pooling proxy such as PgBouncer
  in ``transaction`` mode does not keep a session's prepared statements).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
import weakref
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask
from sqlalchemy import event, types
from sqlalchemy.engine.result import result_tuple
from sqlalchemy.exc import MultipleResultsFound

from app.core.extensions import db

log = logging.getLogger(__name__)

OPTION = "jx_prepare"
#: Distinct statement texts prepared per process (a statement whose text varies by value
#: would otherwise grow the server's memory on every connection).
LIMIT = 256
_TOKEN = re.compile(r"%%|%\(([^)]+)\)s")
#: Codes after which the connection's prepared statements cannot be trusted.
_STALE = {"26000", "0A000"}


class _Plan:
    __slots__ = ("execute", "name", "names", "prepare")

    def __init__(self, name: str, prepare: str, execute: str, names: list[str]) -> None:
        self.name = name
        self.prepare = prepare
        self.execute = execute
        self.names = names

    def execute_text(self, cursor: Any, parameters: dict[str, Any]) -> str | None:
        """The ``EXECUTE`` with its arguments rendered as psycopg2 would render them, or None
        when this connection's settings are not the ones the fast rendering assumes."""
        connection = cursor.connection
        if (
            connection.encoding != "UTF8"
            or connection.get_parameter_status("standard_conforming_strings") != "on"
        ):
            return None
        if not self.names:
            return self.execute
        return (
            f"EXECUTE {self.name}("
            + ", ".join([_literal(cursor, parameters[n]) for n in self.names])
            + ")"
        )


def _signed(text: str) -> str:
    # psycopg2 puts a space before a negative number (``- -1`` must not become a comment).
    return " " + text if text.startswith("-") else text


def _str_literal(cursor: Any, value: str) -> str:
    if "\x00" in value:  # psycopg2 refuses it with its own error
        return _adapted(cursor, value)
    # standard_conforming_strings is on (checked): doubling the quote is the whole escaping.
    return "'" + value.replace("'", "''") + "'"


def _float_literal(cursor: Any, value: float) -> str:
    if math.isfinite(value):
        return _signed(repr(value))
    return _adapted(cursor, value)


def _decimal_literal(cursor: Any, value: Decimal) -> str:
    if value.is_finite():
        return _signed(str(value))
    return _adapted(cursor, value)


def _datetime_literal(_cursor: Any, value: datetime) -> str:
    kind = "timestamp" if value.tzinfo is None else "timestamptz"
    return f"'{value.isoformat()}'::{kind}"


def _adapted(cursor: Any, value: Any) -> str:
    return str(cursor.mogrify("%s", (value,)).decode())


#: psycopg2's rendering of a parameter as an SQL literal, per exact type, for the types the hot
#: path binds (~0.25 µs a parameter against psycopg2's ~1 µs); any other type is psycopg2's.
#: ``tests/core/test_prepared_statements.py`` compares the two on generated values.
_LITERALS: dict[type, Any] = {
    str: _str_literal,
    int: lambda _c, v: _signed(str(v)),
    bool: lambda _c, v: "true" if v else "false",
    type(None): lambda _c, _v: "NULL",
    float: _float_literal,
    Decimal: _decimal_literal,
    datetime: _datetime_literal,
    date: lambda _c, v: f"'{v.isoformat()}'::date",
}


def _literal(cursor: Any, value: Any) -> str:
    render = _LITERALS.get(type(value))
    return _adapted(cursor, value) if render is None else str(render(cursor, value))


#: statement text -> its plan, or None when PostgreSQL refused to prepare it.
_plans: dict[str, _Plan | None] = {}
_lock = threading.Lock()
_names = itertools.count(1)


def _convert(statement: str) -> tuple[str, list[str]]:
    """psycopg2's ``%(name)s`` placeholders as ``$n`` (a name used twice is one parameter), and
    ``%%`` as ``%``: the text of a ``PREPARE``, and the names in their order."""
    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _TOKEN.sub(replace, statement), names


def _declared(context: Any, names: list[str]) -> list[str]:
    """The type of each parameter as SQLAlchemy knows it (``unknown`` where it does not)."""
    binds = getattr(context.compiled, "binds", {})
    dialect = context.dialect
    out = []
    for name in names:
        bind = binds.get(name)
        sql_type = getattr(bind, "type", None)
        if sql_type is None or isinstance(sql_type, types.NullType | types.JSON):
            out.append("unknown")
            continue
        try:
            out.append(dialect.type_compiler_instance.process(sql_type))
        except Exception:  # a type PostgreSQL names differently: let it infer
            out.append("unknown")
    return out


def _plan(cursor: Any, statement: str, context: Any) -> _Plan | None:
    """The process's plan for ``statement``, preparing it on this connection (first time in the
    process: find the parameter types PostgreSQL accepts)."""
    with _lock:
        if statement in _plans:
            return _plans[statement]
        if len(_plans) >= LIMIT:
            return None
        name = f"jx_p{next(_names)}"
    text, names = _convert(statement)
    execute = f"EXECUTE {name}" + (
        "(" + ", ".join(f"%({n})s" for n in names) + ")" if names else ""
    )
    for declared in (["unknown"] * len(names), _declared(context, names)):
        head = f"PREPARE {name} ({', '.join(declared)})" if names else f"PREPARE {name}"
        plan = _Plan(name, f"{head} AS {text}", execute, names)
        if _try_prepare(cursor, plan):
            with _lock:
                _plans.setdefault(statement, plan)
                return _plans[statement]
    log.warning("statement not prepared (PostgreSQL refused it): %s", statement[:200])
    with _lock:
        _plans.setdefault(statement, None)
    return None


def _try_prepare(cursor: Any, plan: _Plan) -> bool:
    """``PREPARE`` on this connection inside a savepoint: a refusal leaves the caller's
    transaction as it was. A lost connection raises (the caller's statement would fail)."""
    import psycopg2

    connection = cursor.connection
    if connection.autocommit:
        try:
            cursor.execute(plan.prepare)
        except psycopg2.ProgrammingError:
            return False
    else:
        try:
            cursor.execute(f"SAVEPOINT jx_prepare; {plan.prepare}; RELEASE SAVEPOINT jx_prepare")
        except (psycopg2.ProgrammingError, psycopg2.DataError, psycopg2.NotSupportedError):
            cursor.execute("ROLLBACK TO SAVEPOINT jx_prepare; RELEASE SAVEPOINT jx_prepare")
            return False
    _prepared_on(connection).add(plan.name)
    return True


#: Names prepared per DBAPI connection (gone with the connection).
_by_connection: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _prepared_on(dbapi_connection: Any) -> set[str]:
    prepared = _by_connection.get(dbapi_connection)
    if prepared is None:
        prepared = _by_connection[dbapi_connection] = set()
    return prepared


_state = {"on": True}


def install(app: Flask) -> None:
    """Serve ``jx_prepare`` statements prepared on every PostgreSQL engine of the app, unless
    ``DB_PREPARED_STATEMENTS`` is off (for the whole process: one database server per process)."""
    _state["on"] = bool(app.config.get("DB_PREPARED_STATEMENTS", True))
    for engine in db.engines.values():
        if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg2":
            continue
        if not event.contains(engine, "do_execute", _do_execute):
            event.listen(engine, "do_execute", _do_execute)
            event.listen(engine, "handle_error", _handle_error)


def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    if not context.execution_options.get(OPTION):
        return False
    return _execute_prepared(cursor, statement, parameters, context)


def _execute_prepared(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """``EXECUTE`` the statement's plan on this cursor, preparing it on the connection first;
    False when it is not prepared (off, refused, or no ``context`` to learn its types from):
    the caller sends the text."""
    if not _state["on"]:
        return False
    plan = _plans.get(statement)
    if plan is None:
        if statement in _plans or context is None:
            return False  # refused once: text from now on
        plan = _plan(cursor, statement, context)
        if plan is None:
            return False
    if plan.name not in _prepared_on(cursor.connection) and not _try_prepare(cursor, plan):
        return False
    text = plan.execute_text(cursor, parameters) if isinstance(parameters, dict) else None
    if text is None:
        cursor.execute(plan.execute, parameters)
    else:
        cursor.execute(text)
    return True


def _handle_error(ctx: Any) -> None:
    code = getattr(ctx.original_exception, "pgcode", None)
    if code in _STALE and _plans.get(ctx.statement) is not None:
        ctx.is_disconnect = True  # a new connection prepares again


# --- hot statements on the cursor ---------------------------------------------------------

#: Statement option set by the builders of statements made once and reused (the money hot
#: path's ``hot_statement``): their SQL and constant parameters never change.
HOT = "jx_hot"


class _Rows(list[Any]):
    """The rows of a hot statement, with the ``Result`` method its callers use."""

    def one_or_none(self) -> Any:
        if len(self) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self[0] if self else None


class _Hot:
    """What one execution through SQLAlchemy taught about a hot statement: its final SQL, its
    constant parameters (literals, expanded ``IN`` lists) and how each caller parameter and
    each result column is processed. Later executions send the same SQL and parameters on the
    connection's DBAPI cursor, past SQLAlchemy's execute layer (~0.15 ms of CPU a statement:
    cache key, parameter construction, execution context, result metadata)."""

    __slots__ = ("bind", "constants", "keys", "make_row", "result", "sql", "stmt")

    def __init__(self, stmt: Any, params: dict[str, Any], result: Any) -> None:
        context = result.context
        compiled = context.compiled
        final = context.parameters[0]
        self.stmt = stmt  # keeps the id() of the cache key alive
        self.sql: str = context.statement
        self.keys = frozenset(params)
        self.constants = {k: v for k, v in final.items() if k not in params}
        processors = compiled._bind_processors
        #: The caller's parameters the SQL uses (a caller may pass more), with their processor.
        self.bind = [(k, processors.get(k)) for k in params if k in final]
        description = result.cursor.description if result.cursor is not None else None
        self.result: list[Any] | None = None
        self.make_row: Any = None
        if description is not None:
            columns = compiled._result_columns
            names = [d[0] for d in description]
            if len(columns) == len(names):
                names = [c[0] for c in columns]
                self.result = [
                    c[3]._cached_result_processor(context.dialect, d[1])
                    for c, d in zip(columns, description, strict=True)
                ]
            else:
                self.result = [None] * len(names)
            self.make_row = result_tuple(names)

    def run(self, connection: Any, params: dict[str, Any]) -> _Rows:
        values = self.constants.copy()
        for key, processor in self.bind:
            value = params[key]
            values[key] = value if processor is None else processor(value)
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            if connection._has_events or connection.engine._has_events:
                for fn in connection.dispatch.before_cursor_execute:
                    fn(connection, cursor, self.sql, values, None, False)
            if not _execute_prepared(cursor, self.sql, values, None):
                cursor.execute(self.sql, values)
            fetched = cursor.fetchall() if cursor.description is not None else []
        except Exception as exc:
            connection._handle_dbapi_exception(exc, self.sql, values, cursor, None)
        finally:
            cursor.close()
        make, processors = self.make_row, self.result
        if make is None or not fetched:
            return _Rows()
        if any(processors):  # type: ignore[arg-type]
            fetched = [
                [v if p is None else p(v) for p, v in zip(processors, row, strict=True)]  # type: ignore[arg-type]
                for row in fetched
            ]
        return _Rows(make(row) for row in fetched)


_hot: dict[int, _Hot] = {}


def execute_hot(connection: Any, stmt: Any, params: dict[str, Any]) -> Any:
    """``connection.execute(stmt, params)`` for a statement marked ``HOT``: on the DBAPI cursor
    once SQLAlchemy has run it once with the same parameter names (PostgreSQL, psycopg2);
    through SQLAlchemy otherwise. ``one_or_none()`` is what callers may ask of the result."""
    entry = _hot.get(id(stmt))
    if entry is not None and entry.stmt is stmt and params.keys() == entry.keys:
        return entry.run(connection, params)
    result = connection.execute(stmt, params, execution_options=_PREPARE_OPTION)
    if (
        entry is None
        and connection.dialect.driver == "psycopg2"
        and stmt.get_execution_options().get(HOT)
        and isinstance(result.context.parameters[0], dict)
        and len(_hot) < LIMIT
    ):
        _hot[id(stmt)] = _Hot(stmt, dict(params), result)
    return result


_PREPARE_OPTION = {OPTION: True}
