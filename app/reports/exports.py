"""Queued CSV exports: a staff member asks, a job writes the file, they download it.

Invariants:
* One export = one ``report_exports`` row and, once ready, one file under ``EXPORT_DIR``
  named by a random ``storage_name``; the download carries ``file_name``.
* Only the staff member who asked may see or download an export: anyone else gets "not
  found" (the same answer as for an id that does not exist: nothing to enumerate), and they
  must still hold the kind's permission when they download.
* Asking and downloading are audited (``report.export_requested``,
  ``report.export_downloaded``); the row counts the downloads.
* Every cell goes through ``app.core.csvsafe`` (formula injection neutralised).
* The job reads through the read replica when one is configured (``app.core.replica``), in
  batches: transactions and players by ascending id (keyset, ``id > last``), each batch a
  short query (a standby cancels long queries that conflict with replay), a progress update
  committed on the primary after each batch. The set is fixed when the job starts: rows
  whose id is above the highest id seen then are not included.
* An export lives ``EXPORT_TTL_HOURS`` from when it was asked; ``expire`` (periodic) deletes
  the file and marks it ``expired``. An export whose job stopped reporting progress for
  ``STALE_AFTER`` (a killed worker) is marked ``failed``.
* A staff member has at most ``MAX_ACTIVE`` exports queued or running at once.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, or_, select, update

from app.core import audit, csvsafe
from app.core.base import iso_or_none as _iso
from app.core.base import utcnow
from app.core.db import atomic, lock_existing, parse_row_id, rowcount
from app.core.errors import AccessDenied, AppError, Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.core.i18n import N_
from app.core.money import format_minor
from app.core.queues import enqueue_after_commit
from app.core.replica import reads
from app.identity.models import PLAYER, USER_STATUSES, User
from app.reports import financial
from app.reports.models import ReportExport
from app.wallet.models import LEDGER_TYPES, LedgerTransaction

log = logging.getLogger(__name__)

MAX_ACTIVE = 5
#: A running export whose progress has not moved for this long lost its worker.
STALE_AFTER = timedelta(hours=1)
ACTIVE = ("queued", "running")


class ExportGone(AppError):
    status, code, message = 410, "EXPORT_EXPIRED", "This export has expired: ask for it again"


@dataclass
class Produced:
    header: list[str]
    #: Rows the export will hold (counted before the first batch).
    total: int
    batches: Iterator[list[list[Any]]]


@dataclass(frozen=True)
class Kind:
    label: str
    permission: str
    parse: Callable[[Mapping[str, Any]], dict[str, Any]]
    file_name: Callable[[dict[str, Any]], str]
    produce: Callable[[dict[str, Any], int], Produced]


# --- parameters ---------------------------------------------------------------------------------


def _text(raw: Mapping[str, Any], name: str, limit: int) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationError.field(name, "Must be text")
    return value.strip()[:limit]


def _day(raw: Mapping[str, Any], name: str, default: date | None) -> date | None:
    value = raw.get(name)
    if value in (None, ""):
        return default
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError.field(name, "Enter the date as YYYY-MM-DD") from None


def _range(raw: Mapping[str, Any], *, required: bool) -> tuple[date | None, date | None]:
    today = utcnow().date()
    date_to = _day(raw, "date_to", today if required else None)
    default_from = date_to - timedelta(days=29) if required and date_to else None
    date_from = _day(raw, "date_from", default_from)
    if date_from and date_to:
        if date_to < date_from:
            raise ValidationError.field("date_to", "The end date is before the start date")
        if required and (date_to - date_from).days >= financial.MAX_DAYS:
            raise ValidationError.field("date_from", f"At most {financial.MAX_DAYS} days")
    return date_from, date_to


def _currency(raw: Mapping[str, Any], *, default: str | None) -> str:
    value = _text(raw, "currency", 8).upper() or (default or "")
    if value and not value.isalpha():
        raise ValidationError.field("currency", "A currency code, like EUR")
    return value


def _report_params(raw: Mapping[str, Any], *, currency: bool, group: bool) -> dict[str, Any]:
    date_from, date_to = _range(raw, required=True)
    params: dict[str, Any] = {"date_from": _iso(date_from), "date_to": _iso(date_to)}
    if currency:
        params["currency"] = _currency(raw, default=current_app.config["DEFAULT_CURRENCY"])
    if group:
        value = _text(raw, "group", 8) or "day"
        if value not in financial.GROUPS:
            raise ValidationError.field("group", f"One of {', '.join(financial.GROUPS)}")
        params["group"] = value
    return params


def _transactions_params(raw: Mapping[str, Any]) -> dict[str, Any]:
    date_from, date_to = _range(raw, required=False)
    type_ = _text(raw, "type", 32)
    if type_ and type_ not in LEDGER_TYPES:
        raise ValidationError.field("type", "Not a ledger transaction type")
    player = raw.get("player_id")
    player_id = None
    if player not in (None, ""):
        player_id = parse_row_id(player)
        if player_id is None:
            raise ValidationError.field("player_id", "A player id")
    return {
        "player_id": player_id,
        "type": type_ or None,
        "currency": _currency(raw, default=None) or None,
        "source": _text(raw, "source", 64) or None,
        "date_from": _iso(date_from),
        "date_to": _iso(date_to),
    }


def _players_params(raw: Mapping[str, Any]) -> dict[str, Any]:
    status = _text(raw, "status", 16)
    if status and status not in USER_STATUSES:
        raise ValidationError.field("status", "Not an account status")
    country = _text(raw, "country", 2).upper()
    if country and not country.isalpha():
        raise ValidationError.field("country", "A two-letter country code")
    return {"q": _text(raw, "q", 100) or None, "status": status or None, "country": country or None}


def _d(value: str) -> date:
    return date.fromisoformat(value)


# --- producing rows -------------------------------------------------------------------------------


def _whole(header_rows: tuple[list[str], list[list[Any]]]) -> Produced:
    header, rows = header_rows
    return Produced(header, len(rows), iter([rows]))


def _financial(p: dict[str, Any], _batch: int) -> Produced:
    report = financial.financial(
        _d(p["date_from"]), _d(p["date_to"]), currency=p["currency"], group=p["group"]
    )
    return _whole(financial.report_rows(report))


def _providers(p: dict[str, Any], _batch: int) -> Produced:
    rows = financial.providers(_d(p["date_from"]), _d(p["date_to"]), currency=p["currency"])
    return _whole(financial.providers_rows(rows, p["currency"]))


def _players_report(p: dict[str, Any], _batch: int) -> Produced:
    report = financial.players(_d(p["date_from"]), _d(p["date_to"]))
    return _whole(financial.players_rows(report))


def _start(day: str | None, *, after: bool = False) -> datetime | None:
    if not day:
        return None
    d = _d(day) + timedelta(days=1 if after else 0)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _keyset(query: Any, id_column: Any, batch: int, to_row: Callable[[Any], list[Any]]) -> Produced:
    """Count ``query``, then yield it in ``batch``-sized pages by ascending id, up to the
    highest id present now."""
    session = db.session
    matching = query.subquery()
    top = session.scalar(select(func.max(matching.c.id)))
    total = session.scalar(select(func.count()).select_from(matching)) or 0

    def pages() -> Iterator[list[list[Any]]]:
        last = 0
        while top is not None and last < top:
            rows = session.scalars(
                query.where(id_column > last, id_column <= top).order_by(id_column).limit(batch)
            ).all()
            if not rows:
                return
            last = rows[-1].id
            yield [to_row(r) for r in rows]

    return Produced([], int(total), pages())


TRANSACTION_HEADER = [
    "id",
    "created_at",
    "user_id",
    "type",
    "currency",
    "cash",
    "bonus",
    "held",
    "balance_after",
    "bonus_balance_after",
    "source",
    "reference_type",
    "reference_id",
    "description",
]


def _transactions(p: dict[str, Any], batch: int) -> Produced:
    t = LedgerTransaction
    query = select(t)
    if p.get("player_id") is not None:
        query = query.where(t.user_id == p["player_id"])
    if p.get("type"):
        query = query.where(t.type == p["type"])
    if p.get("currency"):
        query = query.where(t.currency == p["currency"])
    if p.get("source"):
        query = query.where(t.source == p["source"])
    if p.get("date_from"):
        query = query.where(t.created_at >= _start(p["date_from"]))
    if p.get("date_to"):
        query = query.where(t.created_at < _start(p["date_to"], after=True))

    def row(r: LedgerTransaction) -> list[Any]:
        c = r.currency
        return [
            r.id,
            r.created_at.astimezone(UTC).isoformat(),
            r.user_id,
            r.type,
            c,
            format_minor(r.cash_delta, c),
            format_minor(r.bonus_delta, c),
            format_minor(r.held_delta, c),
            format_minor(r.balance_after, c),
            format_minor(r.bonus_balance_after, c),
            r.source,
            r.reference_type or "",
            r.reference_id or "",
            r.description or "",
        ]

    produced = _keyset(query, t.id, batch, row)
    produced.header = TRANSACTION_HEADER
    return produced


PLAYER_HEADER = ["id", "username", "email", "status", "country", "created_at", "last_login_at"]


def _players(p: dict[str, Any], batch: int) -> Produced:
    query = select(User).where(User.role_id == PLAYER)
    if p.get("q"):
        needle = f"%{p['q'].lower()}%"
        conditions: list[Any] = [
            func.lower(User.username).like(needle),
            func.lower(User.email).like(needle),
        ]
        row_id = parse_row_id(p["q"])
        if row_id is not None:
            conditions.append(User.id == row_id)
        query = query.where(or_(*conditions))
    if p.get("status"):
        query = query.where(User.status == p["status"])
    if p.get("country"):
        query = query.where(User.country == p["country"])

    def row(u: User) -> list[Any]:
        return [
            u.id,
            u.username,
            u.email,
            u.status,
            u.country or "",
            u.created_at.astimezone(UTC).isoformat(),
            u.last_login_at.astimezone(UTC).isoformat() if u.last_login_at else "",
        ]

    produced = _keyset(query, User.id, batch, row)
    produced.header = PLAYER_HEADER
    return produced


def _name(prefix: str, *keys: str) -> Callable[[dict[str, Any]], str]:
    def make(p: dict[str, Any]) -> str:
        parts = [prefix, *(str(p[k]) for k in keys if p.get(k))]
        return "-".join(parts) + ".csv"

    return make


KINDS: dict[str, Kind] = {
    "financial": Kind(
        N_("Financial report"),
        "reports.read",
        lambda raw: _report_params(raw, currency=True, group=True),
        _name("financial", "currency", "date_from", "date_to", "group"),
        _financial,
    ),
    "providers": Kind(
        N_("Providers report"),
        "reports.read",
        lambda raw: _report_params(raw, currency=True, group=False),
        _name("providers", "currency", "date_from", "date_to"),
        _providers,
    ),
    "players_report": Kind(
        N_("Players report"),
        "reports.read",
        lambda raw: _report_params(raw, currency=False, group=False),
        _name("players-report", "date_from", "date_to"),
        _players_report,
    ),
    "transactions": Kind(
        N_("Ledger transactions"),
        "transactions.read",
        _transactions_params,
        _name("transactions", "currency", "type", "date_from", "date_to"),
        _transactions,
    ),
    "players": Kind(
        N_("Players"),
        "players.read",
        _players_params,
        _name("players", "status", "country"),
        _players,
    ),
}


# --- asking, listing, downloading --------------------------------------------------------------


def _kind(name: Any) -> Kind:
    if not isinstance(name, str) or name not in KINDS:
        raise ValidationError.field("kind", f"One of {', '.join(KINDS)}")
    return KINDS[name]


def request_export(user: User, kind_name: Any, raw: Mapping[str, Any]) -> ReportExport:
    """Record the export, audit the request and queue its job (after commit)."""
    kind = _kind(kind_name)
    if not user.can(kind.permission):
        raise AccessDenied()
    params = kind.parse(raw)
    now = utcnow()
    with atomic():
        active = db.session.scalar(
            select(func.count(ReportExport.id)).where(
                ReportExport.requested_by_id == user.id, ReportExport.status.in_(ACTIVE)
            )
        )
        if (active or 0) >= MAX_ACTIVE:
            raise Conflict(
                f"You already have {MAX_ACTIVE} exports in progress: wait for one to finish"
            )
        export = ReportExport(
            public_id=secrets.token_hex(16),
            requested_by_id=user.id,
            kind=str(kind_name),
            params=params,
            status="queued",
            rows_done=0,
            downloads=0,
            file_name=kind.file_name(params),
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(hours=int(current_app.config["EXPORT_TTL_HOURS"])),
        )
        db.session.add(export)
        db.session.flush()  # the id the job is given
        audit.record(
            "report.export_requested",
            actor=user,
            target_type="report_export",
            target_id=export.public_id,
            after={"kind": export.kind, "params": params},
        )
        # One try: a failed export says why on the page and is asked for again.
        enqueue_after_commit(
            "app.reports.jobs.run_export", export.id, queue_name="reports", retry=None
        )
    return export


def list_for(user: User, limit: int = 50) -> list[ReportExport]:
    return list(
        db.session.scalars(
            select(ReportExport)
            .where(ReportExport.requested_by_id == user.id)
            .order_by(ReportExport.created_at.desc(), ReportExport.id.desc())
            .limit(limit)
        )
    )


def get_for(user: User, public_id: Any) -> ReportExport:
    """The user's own export, else ``NotFound`` (whoever else's it is)."""
    if not isinstance(public_id, str) or len(public_id) != 32:
        raise NotFound("No such export")
    export = db.session.scalar(
        select(ReportExport).where(
            ReportExport.public_id == public_id, ReportExport.requested_by_id == user.id
        )
    )
    if export is None:
        raise NotFound("No such export")
    return export


def export_dir() -> Path:
    config = current_app.config
    path = Path(config["EXPORT_DIR"] or Path(config["INSTANCE_DIR"]) / "exports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def download(user: User, public_id: Any) -> tuple[Path, ReportExport]:
    """The file of the user's ready export (audited, counted)."""
    export = get_for(user, public_id)
    if not user.can(_kind(export.kind).permission):
        raise AccessDenied()
    if export.status == "expired" or export.expires_at <= utcnow():
        raise ExportGone()
    if export.status != "ready" or not export.storage_name:
        raise Conflict(f"This export is {export.status}, not ready to download")
    path = export_dir() / export.storage_name
    if not path.is_file():
        raise ExportGone()
    with atomic():
        locked = lock_existing(ReportExport, ReportExport.id == export.id)
        locked.downloads += 1
        audit.record(
            "report.export_downloaded",
            actor=user,
            target_type="report_export",
            target_id=locked.public_id,
            after={"kind": locked.kind, "downloads": locked.downloads},
        )
    return path, export


# --- the job --------------------------------------------------------------------------------------


def _set(export_id: int, **values: Any) -> int:
    values.setdefault("updated_at", utcnow())
    with atomic():
        return rowcount(
            db.session.execute(
                update(ReportExport).where(ReportExport.id == export_id).values(**values)
            )
        )


def run(export_id: int) -> str:
    """Build one export's file. Idempotent: only a ``queued`` export is built."""
    with atomic():
        claimed = rowcount(
            db.session.execute(
                update(ReportExport)
                .where(ReportExport.id == export_id, ReportExport.status == "queued")
                .values(status="running", started_at=utcnow(), updated_at=utcnow())
            )
        )
    if not claimed:
        return "skipped"
    export = db.session.get_one(ReportExport, export_id)
    kind, params = KINDS[export.kind], dict(export.params)
    config = current_app.config
    batch = max(1, int(config["EXPORT_BATCH_ROWS"]))
    storage = f"{secrets.token_hex(16)}.csv"
    part = export_dir() / f"{storage}.part"
    try:
        with reads(), part.open("w", encoding="utf-8", newline="") as stream:
            produced = kind.produce(params, batch)
            if produced.total > int(config["EXPORT_MAX_ROWS"]):
                raise ValidationError(
                    f"{produced.total} rows: more than {config['EXPORT_MAX_ROWS']} in one "
                    "export, narrow the filters"
                )
            _set(export_id, rows_total=produced.total)
            writer = csvsafe.writer(stream, lineterminator="\n")
            writer.writerow(produced.header)
            done = 0
            for rows in produced.batches:
                writer.writerows(rows)
                done += len(rows)
                _set(export_id, rows_done=done)
        size = part.stat().st_size
        os.replace(part, export_dir() / storage)
        _set(
            export_id,
            status="ready",
            storage_name=storage,
            size_bytes=size,
            rows_done=done,
            rows_total=done,
            finished_at=utcnow(),
        )
    except Exception as exc:
        part.unlink(missing_ok=True)
        db.session.rollback()
        message = exc.message if isinstance(exc, AppError) else type(exc).__name__
        _set(export_id, status="failed", error=str(message)[:300], finished_at=utcnow())
        log.exception("export %s failed", export_id)
        raise
    return "ready"


def expire(now: datetime | None = None) -> dict[str, int]:
    """The periodic sweep: delete the files of exports past ``expires_at`` and mark them
    ``expired``; mark ``failed`` the running exports whose job stopped reporting."""
    now = now or utcnow()
    due = db.session.scalars(
        select(ReportExport).where(
            ReportExport.status.in_(("queued", "ready", "failed")),
            ReportExport.expires_at <= now,
        )
    ).all()
    expired = 0
    for export in due:
        if export.storage_name:
            (export_dir() / export.storage_name).unlink(missing_ok=True)
        expired += _set(export.id, status="expired", storage_name=None, updated_at=now)
    stale = _set_where_stale(now)
    return {"expired": expired, "interrupted": stale}


def _set_where_stale(now: datetime) -> int:
    with atomic():
        return rowcount(
            db.session.execute(
                update(ReportExport)
                .where(
                    ReportExport.status == "running", ReportExport.updated_at < now - STALE_AFTER
                )
                .values(
                    status="failed",
                    error="Interrupted: its job stopped (ask for it again)",
                    finished_at=now,
                    updated_at=now,
                )
            )
        )
