"""The writer seam between the analytics sink and ClickHouse.

Two implementations execute the same SQL text (the DDL of ``clickhouse_schema``, the
``INSERT ... VALUES`` rendered here, the example queries):

* ``HttpWriter``: a ClickHouse server through ``clickhouse-connect`` (production:
  ``CLICKHOUSE_URL=http(s)://user:password@host:8123/database``).
* ``ChdbWriter``: chDB, the ClickHouse engine in-process (``CLICKHOUSE_URL=chdb:///a/dir``;
  the suite's ClickHouse). ``chdb`` is not a runtime dependency: install it to use this.

Any failure to reach or write ClickHouse raises ``ClickHouseUnavailable``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.binding import finalize_query, format_str

from app.reports import clickhouse_schema

DEFAULT_DATABASE = "jackpotx"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse could not be reached, or refused a statement."""


class Writer(Protocol):
    database: str

    def command(self, sql: str) -> None: ...

    def query(self, sql: str) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def literal(value: Any) -> str:
    """A Python value as a ClickHouse literal (datetimes in UTC with microseconds)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to ClickHouse")
        return "'" + value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return format_str(value)
    raise TypeError(f"no ClickHouse literal for {type(value).__name__}")


def insert_sql(
    database: str, table: str, rows: Sequence[Sequence[Any]], *, token: str | None = None
) -> str:
    """``INSERT INTO db.table (columns) [SETTINGS token] VALUES (...), ...`` for ``rows`` in
    the column order of ``clickhouse_schema.TABLES[table]``."""
    columns = [name for name, _type in clickhouse_schema.TABLES[table]]
    head = f"INSERT INTO `{database}`.`{table}` (" + ", ".join(f"`{c}`" for c in columns) + ")"
    # Synchronous: the answer means the rows are stored (a server profile with async inserts
    # would otherwise acknowledge a buffer), and deduplicated by the batch's token.
    head += " SETTINGS async_insert = 0, insert_deduplicate = 1"
    if token is not None:
        head += f", insert_deduplication_token = {format_str(token)}"
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"{table}: {len(row)} values for {len(columns)} columns")
    values = ",\n".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)
    return f"{head} VALUES\n{values}"


def bind(sql: str, params: dict[str, Any] | None = None) -> str:
    """Client-side parameter binding (``%(name)s``), as clickhouse-connect does it."""
    return finalize_query(sql, params or None)


def _convert(value: Any, type_: str) -> Any:
    """A JSON value of a chDB result as the Python value clickhouse-connect returns."""
    if value is None:
        return None
    base = type_
    for wrapper in ("LowCardinality(", "Nullable("):
        if base.startswith(wrapper):
            base = base[len(wrapper) : -1]
    if base.startswith(("Int", "UInt")):
        return int(value)
    if base.startswith("Float"):
        return float(value)
    if base.startswith("Decimal"):
        return Decimal(str(value))
    if base.startswith("Date32") or base == "Date":
        return date.fromisoformat(value)
    if base.startswith("DateTime"):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


class ChdbWriter:
    """chDB: the ClickHouse engine inside this process, its data in ``path``. One chDB session
    per process (an engine limit), so writers on the same path share it."""

    _sessions: dict[str, Any] = {}

    def __init__(self, path: str, database: str = DEFAULT_DATABASE) -> None:
        try:
            from chdb import session as chdb_session  # optional: a big wheel, tests + local
        except ImportError as exc:
            raise ClickHouseUnavailable(
                "CLICKHOUSE_URL=chdb://... needs the chdb package (pip install chdb)"
            ) from exc
        self.database = database
        if path not in self._sessions:
            self._sessions[path] = chdb_session.Session(path)
        self._session = self._sessions[path]

    def _run(self, sql: str, fmt: str = "CSV") -> Any:
        try:
            return self._session.query(sql, fmt)
        except Exception as exc:  # chDB raises plain RuntimeError for any server error
            raise ClickHouseUnavailable(f"chDB: {exc}"[:500]) from exc

    def command(self, sql: str) -> None:
        self._run(sql)

    def query(self, sql: str) -> list[dict[str, Any]]:
        raw = self._run(sql, "JSONCompact").bytes()
        if not raw.strip():
            return []
        data = json.loads(raw)
        meta = data["meta"]
        return [
            {col["name"]: _convert(v, col["type"]) for col, v in zip(meta, row, strict=True)}
            for row in data["data"]
        ]

    def close(self) -> None:
        """Sessions stay open for the process (reopening one is what chDB forbids)."""


class HttpWriter:
    """A ClickHouse server through clickhouse-connect (HTTP)."""

    def __init__(self, url: str, *, connect_timeout: int = 5, send_receive_timeout: int = 60):
        parts = urlsplit(url)
        database = parts.path.strip("/") or DEFAULT_DATABASE
        if not _NAME.match(database):
            raise ValueError(f"ClickHouse database name {database!r} is not a plain identifier")
        self.database = database
        # The database is created by clickhouse-init: connect to the server's default one.
        dsn = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
        try:
            self._client = clickhouse_connect.get_client(
                dsn=dsn,
                connect_timeout=connect_timeout,
                send_receive_timeout=send_receive_timeout,
            )
        except Exception as exc:
            raise ClickHouseUnavailable(f"ClickHouse: {exc}"[:500]) from exc

    def command(self, sql: str) -> None:
        try:
            self._client.command(sql)
        except Exception as exc:
            raise ClickHouseUnavailable(f"ClickHouse: {exc}"[:500]) from exc

    def query(self, sql: str) -> list[dict[str, Any]]:
        try:
            result = self._client.query(sql)
        except Exception as exc:
            raise ClickHouseUnavailable(f"ClickHouse: {exc}"[:500]) from exc
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def close(self) -> None:
        self._client.close()


def connect(url: str) -> Writer:
    """The writer ``url`` names: ``chdb:///dir[?database=name]`` or ``http(s)://...``."""
    parts = urlsplit(url)
    if parts.scheme == "chdb":
        database = parse_qs(parts.query).get("database", [DEFAULT_DATABASE])[0]
        if not _NAME.match(database):
            raise ValueError(f"ClickHouse database name {database!r} is not a plain identifier")
        if not parts.path:
            raise ValueError("chdb:// needs a directory: chdb:///var/lib/jackpotx-chdb")
        return ChdbWriter(parts.path, database)
    if parts.scheme in ("http", "https"):
        return HttpWriter(url)
    raise ValueError("CLICKHOUSE_URL is chdb:///dir or http(s)://user:pass@host:8123/database")


def redacted(url: str) -> str:
    """``url`` without its password (what status pages show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def init_schema(writer: Writer) -> list[str]:
    """Apply the DDL (idempotent). Returns the tables."""
    for statement in clickhouse_schema.ddl(writer.database):
        writer.command(statement)
    return list(clickhouse_schema.TABLES)


def run_query(writer: Writer, name: str, **params: Any) -> list[dict[str, Any]]:
    """One of the documented example queries, with its parameters bound."""
    return writer.query(bind(clickhouse_schema.query(name, writer.database), params))
