"""The ClickHouse event sink: ledger transactions and entries, rounds, payments and player
events streamed from PostgreSQL into ClickHouse (``app.reports.clickhouse_schema``), when
``CLICKHOUSE_URL`` is set.

Invariants:

* The source tables are the log. Each stream reads its source in keyset order of
  (``ts``, ``id``), where ``ts`` is ``created_at`` for append-only sources (the ledger, login
  history, registrations) and ``updated_at`` for mutable ones (rounds, payments: every change
  re-exports the row, and ClickHouse keeps the newest version).
* Its position is a durable high-water mark in PostgreSQL (``analytics_sink_state``), locked
  for the batch (``FOR UPDATE SKIP LOCKED``: two runs never export one stream at once) and
  advanced in the same transaction, after ClickHouse acknowledged the insert. A crash or a
  ClickHouse error before that commit leaves the mark where it was: the next run sends the
  batch again (at-least-once delivery); the ReplacingMergeTree tables keep one row per
  source key, and queries read ``FINAL``: each row counts exactly once.
* Only rows whose ``ts`` is at least ``CLICKHOUSE_SINK_SETTLE_SECONDS`` old are exported: a
  transaction still open when a later one committed could otherwise commit a row behind
  the mark. A row committed more than that late is reported by ``sink-status --verify``
  (append-only streams) and recovered by ``sink-rewind`` (re-sending is harmless).
* A batch is at most ``CLICKHOUSE_SINK_BATCH`` rows. The money path is never touched: the
  sink only reads its tables and writes its own state rows.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, and_, func, or_, select, true, update

from app.core.base import iso_or_none as _iso
from app.core.db import atomic, dialect_insert, table_of
from app.core.extensions import db
from app.identity.models import PLAYER, LoginEvent, User
from app.payments.models import PaymentGateway, PaymentTransaction
from app.play.models import GameRound, ProviderTransaction
from app.reports.clickhouse import ClickHouseUnavailable, Writer, connect, insert_sql, redacted
from app.reports.models import SinkState
from app.wallet.models import LedgerEntry, LedgerTransaction

log = logging.getLogger(__name__)


class SinkFailed(RuntimeError):
    """A stream could not be exported (ClickHouse unreachable or refusing): nothing was lost,
    its mark did not move; the next run retries."""


@dataclass(frozen=True)
class Stream:
    name: str
    #: The ClickHouse table it fills.
    table: str
    ts: Any
    id: Any
    #: The source rows: a select of the columns ``to_rows`` needs (joins and filters included).
    base: Callable[[], Select]
    #: Fetched rows -> ClickHouse rows, in ``clickhouse_schema.TABLES[table]`` order.
    to_rows: Callable[[Sequence[Any]], list[tuple[Any, ...]]]
    #: True: a row is exported once; False: every change of the row is exported again.
    append_only: bool


# --- the streams --------------------------------------------------------------------------------

_t = LedgerTransaction


def _ledger_base() -> Select:
    return select(
        _t.id,
        _t.created_at,
        _t.user_id,
        _t.wallet_id,
        _t.currency,
        _t.type,
        _t.source,
        _t.reference_type,
        _t.reference_id,
        _t.cash_delta,
        _t.bonus_delta,
        _t.held_delta,
        _t.balance_after,
        _t.bonus_balance_after,
    )


def _attribution(rows: Sequence[Any]) -> dict[int, tuple[int, int | None, int | None]]:
    """Ledger id -> (provider id, round id, game id) of the provider callbacks' movements,
    as the daily rollups attribute them (``rollups._fold_games``): the callback's round, or
    for a refund/rollback the round of the transaction it names."""
    claims: dict[int, int] = {}
    for r in rows:
        if r.reference_type == "provider_transaction" and str(r.reference_id).isdigit():
            claims[r.id] = int(r.reference_id)
    if not claims:
        return {}
    pt = ProviderTransaction
    found = {
        row.id: row
        for row in db.session.execute(
            select(pt.id, pt.provider_id, pt.external_round_id, pt.reference_external_id).where(
                pt.id.in_(set(claims.values()))
            )
        )
    }
    referenced: dict[tuple[int, str], str | None] = {}
    wanted = {
        (p.provider_id, p.reference_external_id)
        for p in found.values()
        if p.external_round_id is None and p.reference_external_id is not None
    }
    for provider_id in {p for p, _e in wanted}:
        ids = [e for p, e in wanted if p == provider_id]
        for ref in db.session.execute(
            select(pt.external_id, pt.external_round_id).where(
                pt.provider_id == provider_id, pt.external_id.in_(ids)
            )
        ):
            referenced[(provider_id, ref.external_id)] = ref.external_round_id

    def round_of(p: Any) -> str | None:
        if p.external_round_id is not None:
            return p.external_round_id
        return referenced.get((p.provider_id, p.reference_external_id))

    wanted_rounds = {(p.provider_id, round_of(p)) for p in found.values() if round_of(p)}
    rounds: dict[tuple[int, str], tuple[int, int]] = {}
    for provider_id in {p for p, _r in wanted_rounds}:
        ext = [r for p, r in wanted_rounds if p == provider_id]
        for rnd in db.session.execute(
            select(GameRound.id, GameRound.external_round_id, GameRound.game_id).where(
                GameRound.provider_id == provider_id, GameRound.external_round_id.in_(ext)
            )
        ):
            rounds[(provider_id, rnd.external_round_id)] = (rnd.id, rnd.game_id)

    out: dict[int, tuple[int, int | None, int | None]] = {}
    for ledger_id, claim_id in claims.items():
        p = found.get(claim_id)
        if p is None:
            continue
        ext_round = round_of(p)
        rnd_ids = rounds.get((p.provider_id, ext_round)) if ext_round else None
        out[ledger_id] = (p.provider_id, *(rnd_ids or (None, None)))
    return out


def _ledger_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    attributed = _attribution(rows)
    return [
        (
            r.id,
            r.created_at,
            r.user_id,
            r.wallet_id,
            r.currency,
            r.type,
            r.source,
            r.reference_type,
            r.reference_id,
            r.cash_delta,
            r.bonus_delta,
            r.held_delta,
            r.balance_after,
            r.bonus_balance_after,
            *attributed.get(r.id, (None, None, None)),
        )
        for r in rows
    ]


def _entries_base() -> Select:
    e = LedgerEntry
    return select(
        e.id,
        e.transaction_id,
        _t.created_at,
        _t.type,
        e.wallet_id,
        e.account,
        e.currency,
        e.amount,
    ).join(_t, _t.id == e.transaction_id)


_g = GameRound


def _rounds_base() -> Select:
    return select(
        _g.id,
        _g.provider_id,
        _g.external_round_id,
        _g.user_id,
        _g.game_id,
        _g.currency,
        _g.status,
        _g.total_bet,
        _g.total_win,
        _g.total_refund,
        _g.bet_cash,
        _g.bet_bonus,
        _g.bets_count,
        _g.created_at,
        _g.updated_at,
        _g.closed_at,
    )


_p = PaymentTransaction


def _payments_base() -> Select:
    return select(
        _p.id,
        _p.user_id,
        _p.gateway_id,
        PaymentGateway.code,
        _p.type,
        _p.status,
        _p.amount_minor,
        _p.fee_minor,
        _p.currency,
        _p.processed_at,
        _p.created_at,
        _p.updated_at,
    ).join(PaymentGateway, PaymentGateway.id == _p.gateway_id)


def _registrations_base() -> Select:
    return select(User.id, User.created_at, User.country, User.currency).where(
        User.role_id == PLAYER
    )


def _registration_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        ("users", r.id, "registration", r.id, r.created_at, r.country, r.currency, None, None)
        for r in rows
    ]


_l = LoginEvent


def _logins_base() -> Select:
    return select(_l.id, _l.user_id, _l.success, _l.created_at, _l.country, _l.portal, _l.reason)


def _login_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            "login_history",
            r.id,
            "login" if r.success else "login_failed",
            r.user_id,
            r.created_at,
            r.country,
            None,
            r.portal,
            r.reason,
        )
        for r in rows
    ]


def _as_tuples(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The base select's columns as they are (without the two keyset columns appended)."""
    return [tuple(r)[:-2] for r in rows]


STREAMS: list[Stream] = [
    Stream(
        "ledger",
        "ledger_transactions",
        _t.created_at,
        _t.id,
        _ledger_base,
        _ledger_rows,
        append_only=True,
    ),
    Stream(
        "ledger_entries",
        "ledger_entries",
        _t.created_at,
        LedgerEntry.id,
        _entries_base,
        _as_tuples,
        append_only=True,
    ),
    Stream(
        "rounds", "game_rounds", _g.updated_at, _g.id, _rounds_base, _as_tuples, append_only=False
    ),
    Stream(
        "payments", "payments", _p.updated_at, _p.id, _payments_base, _as_tuples, append_only=False
    ),
    Stream(
        "registrations",
        "player_events",
        User.created_at,
        User.id,
        _registrations_base,
        _registration_rows,
        append_only=True,
    ),
    Stream(
        "logins",
        "player_events",
        _l.created_at,
        _l.id,
        _logins_base,
        _login_rows,
        append_only=True,
    ),
]
BY_NAME = {s.name: s for s in STREAMS}


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    url: str
    batch: int
    max_batches: int
    settle_seconds: int

    @classmethod
    def from_app(cls) -> Settings:
        cfg = current_app.config
        return cls(
            url=cfg.get("CLICKHOUSE_URL", ""),
            batch=int(cfg.get("CLICKHOUSE_SINK_BATCH", 5000)),
            max_batches=int(cfg.get("CLICKHOUSE_SINK_MAX_BATCHES", 20)),
            settle_seconds=int(cfg.get("CLICKHOUSE_SINK_SETTLE_SECONDS", 30)),
        )


# --- the mark -----------------------------------------------------------------------------------


def _after(stream: Stream, last_ts: datetime | None, last_id: int) -> Any:
    """Rows after the mark, in keyset order."""
    if last_ts is None:
        return true()
    return or_(stream.ts > last_ts, and_(stream.ts == last_ts, stream.id > last_id))


def _ensure_states(names: Sequence[str]) -> None:
    with atomic():
        for name in names:
            db.session.execute(
                dialect_insert(table_of(SinkState))
                .values(stream=name, last_id=0, exported_rows=0, batches=0)
                .on_conflict_do_nothing(index_elements=["stream"])
            )


def _locked_state(name: str) -> SinkState | None:
    """The stream's mark, locked for this transaction (``None``: another run holds it)."""
    return db.session.scalars(
        select(SinkState)
        .where(SinkState.stream == name)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()


def _token(stream: Stream, rows: Sequence[Any]) -> str:
    """The batch's insert_deduplication_token: the same rows (same versions) give the same
    token, so ClickHouse drops a batch it already stored when a crash made us send it again."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row._sink_id}:{row._sink_ts.isoformat()};".encode())
    return f"jx:{stream.name}:{digest.hexdigest()}"


@dataclass
class BatchResult:
    stream: str
    exported: int = 0
    skipped: bool = False


def export_batch(stream: Stream, writer: Writer, *, limit: int, cut: datetime) -> BatchResult:
    """Send the next ``limit`` rows of ``stream`` (those with ``ts <= cut``) to ClickHouse and
    advance the mark, in one PostgreSQL transaction that commits only after ClickHouse
    acknowledged. Raises ``ClickHouseUnavailable`` (nothing moved) on a ClickHouse failure."""
    result = BatchResult(stream.name)
    with atomic():
        state = _locked_state(stream.name)
        if state is None:
            result.skipped = True
            return result
        now = datetime.now(UTC)
        state.last_run_at = now
        rows = db.session.execute(
            stream.base()
            .add_columns(stream.ts.label("_sink_ts"), stream.id.label("_sink_id"))
            .where(stream.ts <= cut, _after(stream, state.last_ts, state.last_id))
            .order_by(stream.ts, stream.id)
            .limit(limit)
        ).all()
        if not rows:
            return result
        data = stream.to_rows(rows)
        writer.command(insert_sql(writer.database, stream.table, data, token=_token(stream, rows)))
        # ClickHouse acknowledged: only now may the mark pass these rows.
        state.last_ts, state.last_id = rows[-1]._sink_ts, rows[-1]._sink_id
        state.exported_rows += len(rows)
        state.batches += 1
        state.last_batch_at = now
        state.last_error = None
        state.last_error_at = None
        result.exported = len(rows)
    return result


def _record_error(name: str, error: str) -> None:
    with atomic():
        db.session.execute(
            update(SinkState)
            .where(SinkState.stream == name)
            .values(last_error=error[:500], last_error_at=datetime.now(UTC))
        )


def run(
    writer: Writer,
    *,
    streams: Sequence[str] | None = None,
    batch: int = 5000,
    max_batches: int = 20,
    settle_seconds: int = 30,
    now: datetime | None = None,
) -> dict[str, int]:
    """Export up to ``max_batches`` batches of each stream. Returns rows exported per stream.
    Raises ``SinkFailed`` after trying every stream if any failed (its error is recorded on
    its state row; the other streams' progress stands)."""
    if batch < 1 or max_batches < 1 or settle_seconds < 0:
        raise ValueError("batch and max_batches are >= 1, settle_seconds >= 0")
    chosen = [BY_NAME[name] for name in streams] if streams else STREAMS
    _ensure_states([s.name for s in chosen])
    cut = (now or datetime.now(UTC)) - timedelta(seconds=settle_seconds)
    done: dict[str, int] = {}
    errors: dict[str, str] = {}
    for stream in chosen:
        done[stream.name] = 0
        try:
            for _ in range(max_batches):
                result = export_batch(stream, writer, limit=batch, cut=cut)
                done[stream.name] += result.exported
                if result.skipped or result.exported < batch:
                    break
        except ClickHouseUnavailable as exc:
            errors[stream.name] = str(exc)
            _record_error(stream.name, str(exc))
            log.warning("analytics sink: %s not exported: %s", stream.name, exc)
    if errors:
        first = next(iter(errors.items()))
        raise SinkFailed(f"{len(errors)} stream(s) not exported; {first[0]}: {first[1]}"[:500])
    return done


def run_configured() -> dict[str, Any]:
    """The periodic job's body: nothing when ``CLICKHOUSE_URL`` is unset."""
    settings = Settings.from_app()
    if not settings.url:
        return {"enabled": False}
    try:
        writer = connect(settings.url)
    except ClickHouseUnavailable as exc:
        for stream in STREAMS:
            _ensure_states([stream.name])
            _record_error(stream.name, str(exc))
        raise SinkFailed(str(exc)) from exc
    try:
        exported = run(
            writer,
            batch=settings.batch,
            max_batches=settings.max_batches,
            settle_seconds=settings.settle_seconds,
        )
    finally:
        writer.close()
    return {"enabled": True, "exported": exported}


def rewind(name: str, to: datetime | None) -> SinkState:
    """Move a stream's mark back to ``to`` (``None``: the beginning): the next runs send the
    rows after it again, which ClickHouse's dedup key absorbs (nothing counts twice)."""
    stream = BY_NAME[name]
    _ensure_states([name])
    with atomic():
        state = db.session.scalars(
            select(SinkState).where(SinkState.stream == name).with_for_update()
        ).one()
        state.last_ts, state.last_id = to, 0
        state.exported_rows = _count(stream, before=to) if stream.append_only else 0
    return state


# --- status -------------------------------------------------------------------------------------


def _count(stream: Stream, *, before: datetime | None) -> int:
    """Source rows at or before a ``ts`` (``None``: none)."""
    if before is None:
        return 0
    query = stream.base().where(stream.ts < before)
    return db.session.scalar(select(func.count()).select_from(query.subquery())) or 0


#: ``behind`` counts at most this many rows (a page view must not count a whole ledger).
BEHIND_CAP = 100_000


def _lag(stream: Stream, last_ts: datetime | None, last_id: int) -> tuple[int, datetime | None]:
    """Rows after the mark (capped at ``BEHIND_CAP``) and the ``ts`` of the first of them;
    both are index range scans in keyset order."""
    after = stream.base().where(_after(stream, last_ts, last_id))
    behind = db.session.scalar(select(func.count()).select_from(after.limit(BEHIND_CAP).subquery()))
    oldest = db.session.scalar(
        after.with_only_columns(stream.ts).order_by(stream.ts, stream.id).limit(1)
    )
    return int(behind or 0), oldest


def status(
    *, verify: bool = False, lag: bool | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Each stream's mark and lag: ``behind`` source rows (or row changes) not exported yet
    (at most ``BEHIND_CAP``: ``behind_capped``), the ``ts`` of the oldest of them and its age
    in seconds, the last batch and error. ``lag`` (default: when the sink is on) computes
    those; off, they are ``None``. ``verify`` (append-only streams) adds ``missed``: rows at
    or before the mark never exported (committed later than the settle window;
    ``sink-rewind`` re-sends them)."""
    settings = Settings.from_app()
    now = now or datetime.now(UTC)
    lag = bool(settings.url) if lag is None else lag
    states = {s.stream: s for s in db.session.scalars(select(SinkState))}
    out = []
    for stream in STREAMS:
        st = states.get(stream.name)
        last_ts, last_id = (st.last_ts, st.last_id) if st else (None, 0)
        behind: int | None = None
        oldest: datetime | None = None
        if lag:
            behind, oldest = _lag(stream, last_ts, last_id)
        row: dict[str, Any] = {
            "stream": stream.name,
            "table": stream.table,
            "append_only": stream.append_only,
            "mark_ts": _iso(last_ts),
            "mark_id": last_id,
            "exported_rows": st.exported_rows if st else 0,
            "batches": st.batches if st else 0,
            "behind": behind,
            "behind_capped": behind is not None and behind >= BEHIND_CAP,
            "oldest_unexported_at": _iso(oldest),
            "lag_seconds": (
                None if not lag else round((now - oldest).total_seconds(), 3) if oldest else 0.0
            ),
            "last_batch_at": _iso(st.last_batch_at) if st else None,
            "last_run_at": _iso(st.last_run_at) if st else None,
            "last_error": st.last_error if st else None,
            "last_error_at": _iso(st.last_error_at) if st else None,
            "missed": None,
        }
        if verify and stream.append_only and last_ts is not None:
            upto = db.session.scalar(
                select(func.count()).select_from(
                    stream.base().where(~_after(stream, last_ts, last_id)).subquery()
                )
            )
            row["missed"] = int(upto or 0) - row["exported_rows"]
        out.append(row)
    return {
        "enabled": bool(settings.url),
        "target": redacted(settings.url) if settings.url else None,
        "settle_seconds": settings.settle_seconds,
        "batch": settings.batch,
        "streams": out,
    }
