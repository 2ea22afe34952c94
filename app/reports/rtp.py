"""The RTP check: each game's measured RTP (wins / stakes) over a window of complete UTC days,
from the daily game rollups, against the RTP the games table declares.

Invariants:

* Settings are read at each run (``app.core.opsettings``): ``rtp_window_days``,
  ``rtp_min_bets`` and ``rtp_min_stakes`` (the significance floor: below either, a game is
  not judged and its flags are left as they are) and ``rtp_tolerance_bp`` (basis points of
  percentage points: 300 = 3 pp). Stakes are compared in the minor units of each currency.
* A game is measured per currency (one currency's stakes never mix with another's). Games
  without a declared RTP and the unattributed movements (``game_id`` NULL) are not judged.
* ``check`` is one transaction and idempotent: a departing game gets one ``open`` flag per
  (game, currency) (the partial unique index ``uq_rtp_flags_live``), refreshed by later runs
  while it is open or acknowledged; a game back within tolerance clears its flag. The raise
  and the clear are audited as the system's; an acknowledgement is a staff decision, audited
  with its actor and note.
* Read-only on the money tables: the figures come from ``app.reports.rollups`` (rolled past
  days; a day never rolled is folded live).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select, text

from app.core import audit, opsettings
from app.core.db import atomic
from app.core.errors import Conflict, NotFound
from app.core.extensions import db
from app.core.money import format_minor
from app.play.models import Game
from app.reports import rollups
from app.reports.models import RTP_FLAG_LIVE, RTP_FLAG_STATUSES, RtpFlag

#: Advisory lock of the check ("JXRT"): two schedulers' runs take turns.
_CHECK_LOCK = 0x4A58_5254
_CENT = Decimal("0.01")


class RtpFlagNotOpen(Conflict):
    code = "RTP_FLAG_NOT_OPEN"
    message = "Only an open RTP flag can be acknowledged"


@dataclass(frozen=True)
class Thresholds:
    window_days: int
    min_bets: int
    min_stakes: int
    #: Percentage points.
    tolerance: Decimal

    @classmethod
    def current(cls) -> Thresholds:
        return cls(
            int(opsettings.value("rtp_window_days")),
            int(opsettings.value("rtp_min_bets")),
            int(opsettings.value("rtp_min_stakes")),
            Decimal(int(opsettings.value("rtp_tolerance_bp"))) / 100,
        )


@dataclass(frozen=True)
class Measure:
    game_id: int
    currency: str
    declared: Decimal
    measured: Decimal
    stakes: int
    wins: int
    bets_count: int
    #: "outside", "within" or "below_floor" (not enough play to judge).
    verdict: str

    @property
    def deviation(self) -> Decimal:
        return self.measured - self.declared


@dataclass
class CheckResult:
    window_from: date
    window_to: date
    thresholds: Thresholds
    measures: list[Measure] = field(default_factory=list)
    raised: list[int] = field(default_factory=list)
    refreshed: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for m in self.measures if m.verdict == verdict)


def window(window_days: int, today: date) -> tuple[date, date]:
    """The last ``window_days`` complete UTC days (today's partial day is not judged)."""
    return today - timedelta(days=window_days), today - timedelta(days=1)


def percent(wins: int, stakes: int) -> Decimal:
    return (Decimal(wins) * 100 / Decimal(stakes)).quantize(_CENT, ROUND_HALF_UP)


def measure(date_from: date, date_to: date, th: Thresholds) -> list[Measure]:
    declared = {
        gid: Decimal(rtp)
        for gid, rtp in db.session.execute(select(Game.id, Game.rtp).where(Game.rtp.is_not(None)))
    }
    out: list[Measure] = []
    for t in rollups.game_totals(date_from, date_to):
        if t.game_id is None or t.game_id not in declared or t.stakes <= 0:
            continue
        measured = percent(t.wins, t.stakes)
        if t.bets_count < th.min_bets or t.stakes < th.min_stakes:
            verdict = "below_floor"
        elif abs(measured - declared[t.game_id]) > th.tolerance:
            verdict = "outside"
        else:
            verdict = "within"
        out.append(
            Measure(
                t.game_id,
                t.currency,
                declared[t.game_id],
                measured,
                t.stakes,
                t.wins,
                t.bets_count,
                verdict,
            )
        )
    return sorted(out, key=lambda m: (m.game_id, m.currency))


def check(now: datetime | None = None) -> CheckResult:
    """Measure every game over the window and raise, refresh or clear its flag."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    th = Thresholds.current()
    date_from, date_to = window(th.window_days, now.date())
    result = CheckResult(date_from, date_to, th)
    with atomic():
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHECK_LOCK})
        result.measures = measure(date_from, date_to, th)
        live = {
            (f.game_id, f.currency): f
            for f in db.session.scalars(select(RtpFlag).where(RtpFlag.status.in_(RTP_FLAG_LIVE)))
        }
        for m in result.measures:
            flag = live.get((m.game_id, m.currency))
            if m.verdict == "outside":
                if flag is None:
                    flag = RtpFlag(game_id=m.game_id, currency=m.currency, raised_at=now)
                    flag.status = "open"
                    _refresh(flag, m, date_from, date_to, now)
                    db.session.add(flag)
                    db.session.flush()  # the id, for the audit row and the result
                    audit.record(
                        "rtp.flag_raised",
                        target_type="rtp_flag",
                        target_id=flag.id,
                        after=flag_json(flag),
                    )
                    result.raised.append(flag.id)
                else:
                    _refresh(flag, m, date_from, date_to, now)
                    result.refreshed.append(flag.id)
            elif m.verdict == "within" and flag is not None:
                before = flag_json(flag)
                _refresh(flag, m, date_from, date_to, now)
                flag.status, flag.cleared_at = "cleared", now
                audit.record(
                    "rtp.flag_cleared",
                    target_type="rtp_flag",
                    target_id=flag.id,
                    before=before,
                    after=flag_json(flag),
                )
                result.cleared.append(flag.id)
    return result


def _refresh(flag: RtpFlag, m: Measure, date_from: date, date_to: date, now: datetime) -> None:
    flag.declared_rtp, flag.measured_rtp = m.declared, m.measured
    flag.stakes, flag.wins, flag.bets_count = m.stakes, m.wins, m.bets_count
    flag.window_from, flag.window_to, flag.checked_at = date_from, date_to, now


def acknowledge(flag_id: int, *, actor: Any, note: str | None = None) -> RtpFlag:
    """A staff member has seen an open flag (and says why, optionally): ``acknowledged``."""
    with atomic():
        flag = db.session.scalar(select(RtpFlag).where(RtpFlag.id == flag_id).with_for_update())
        if flag is None:
            raise NotFound("No such RTP flag")
        if flag.status != "open":
            raise RtpFlagNotOpen(errors=[{"field": "status", "message": flag.status}])
        before = flag_json(flag)
        flag.status = "acknowledged"
        flag.acknowledged_by = getattr(actor, "id", actor)
        flag.acknowledged_at = datetime.now(UTC)
        flag.note = (note or "").strip()[:500] or None
        audit.record(
            "rtp.flag_acknowledged",
            actor=actor,
            target_type="rtp_flag",
            target_id=flag.id,
            before=before,
            after=flag_json(flag),
            reason=flag.note,
        )
    return flag


def list_flags(status: str | None = None, *, limit: int = 200) -> list[tuple[RtpFlag, str]]:
    """Flags (newest first) with their game's name; ``status`` one of ``RTP_FLAG_STATUSES``."""
    if status is not None and status not in RTP_FLAG_STATUSES:
        raise ValueError(f"status is one of {', '.join(RTP_FLAG_STATUSES)}")
    query = select(RtpFlag, Game.name).join(Game, Game.id == RtpFlag.game_id)
    if status is not None:
        query = query.where(RtpFlag.status == status)
    rows = db.session.execute(
        query.order_by(RtpFlag.raised_at.desc(), RtpFlag.id.desc()).limit(limit)
    )
    return [(flag, name) for flag, name in rows.all()]


def flag_json(flag: RtpFlag, name: str | None = None) -> dict[str, Any]:
    declared = Decimal(flag.declared_rtp).quantize(_CENT)
    measured = Decimal(flag.measured_rtp).quantize(_CENT)
    out: dict[str, Any] = {
        "id": flag.id,
        "game_id": flag.game_id,
        "currency": flag.currency,
        "status": flag.status,
        "declared_rtp": str(declared),
        "measured_rtp": str(measured),
        "deviation_pp": str(measured - declared),
        "stakes": format_minor(int(flag.stakes), flag.currency),
        "wins": format_minor(int(flag.wins), flag.currency),
        "bets_count": flag.bets_count,
        "window_from": flag.window_from.isoformat(),
        "window_to": flag.window_to.isoformat(),
        "raised_at": flag.raised_at.isoformat() if flag.raised_at else None,
        "checked_at": flag.checked_at.isoformat() if flag.checked_at else None,
        "acknowledged_by": flag.acknowledged_by,
        "acknowledged_at": flag.acknowledged_at.isoformat() if flag.acknowledged_at else None,
        "note": flag.note,
        "cleared_at": flag.cleared_at.isoformat() if flag.cleared_at else None,
    }
    if name is not None:
        out["game_name"] = name
    return out
