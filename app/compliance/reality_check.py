"""Reality checks (responsible gaming): at the player's chosen interval, a ``notification``
telling how long the session has lasted and what it has won or lost.

Invariants:
* A session is the span a player is connected: it starts at the later of their last login
  and the opening of their current run of live connections (``presence``). Players who are
  not connected get no reminder (there is nobody to remind).
* The k-th reminder of a session carries the dedupe key
  ``reality_check:<user>:<session start>:<k>``: a scan run twice, or by two schedulers,
  sends it once.
* The net result comes from the wallet ledger through the source the wallet domain
  registers (``register_net_result_source``). Until one is registered the reminder says the
  figure is unavailable; it never shows an invented number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.compliance.models import RealityCheckSetting
from app.core import audit, notifications, presence
from app.core.db import atomic
from app.core.errors import ValidationError
from app.core.extensions import db
from app.core.i18n import Msg
from app.core.money import format_minor
from app.identity.models import PLAYER, User

log = logging.getLogger(__name__)

MIN_INTERVAL_MINUTES, MAX_INTERVAL_MINUTES = 5, 24 * 60

#: ``(user_id, session_start) -> [{"currency", "wagered", "won", "net"}]`` in minor units.
NetResultSource = Callable[[int, datetime], list[dict[str, Any]]]
_net_result_source: NetResultSource | None = None


def register_net_result_source(source: NetResultSource | None) -> None:
    """The wallet domain registers how to sum a player's bets and wins since an instant."""
    global _net_result_source
    _net_result_source = source


def get_interval(user_id: int) -> int | None:
    row = db.session.get(RealityCheckSetting, user_id)
    return row.interval_minutes if row else None


def set_interval(user_id: int, minutes: int | None, *, actor: Any = None) -> RealityCheckSetting:
    """Turn reminders on (every ``minutes``) or off (``None``); audited. Caller commits."""
    if minutes is not None and (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not MIN_INTERVAL_MINUTES <= minutes <= MAX_INTERVAL_MINUTES
    ):
        raise ValidationError.field(
            "interval_minutes",
            f"Must be between {MIN_INTERVAL_MINUTES} and {MAX_INTERVAL_MINUTES} minutes, or null",
        )
    row = db.session.get(RealityCheckSetting, user_id)
    before = row.interval_minutes if row else None
    if row is None:
        row = RealityCheckSetting(user_id=user_id, interval_minutes=minutes)
        db.session.add(row)
    else:
        row.interval_minutes = minutes
    audit.record(
        "responsible_gaming.reality_check",
        actor=actor if actor is not None else user_id,
        target_type="user",
        target_id=user_id,
        before={"interval_minutes": before},
        after={"interval_minutes": minutes},
    )
    return row


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def _net_result(user_id: int, start: datetime) -> list[dict[str, Any]] | None:
    if _net_result_source is None:
        return None
    rows = _net_result_source(user_id, start)
    return [
        {
            "currency": r["currency"],
            "wagered": format_minor(r["wagered"], r["currency"]),
            "won": format_minor(r["won"], r["currency"]),
            "net": format_minor(r["net"], r["currency"]),
        }
        for r in rows
    ]


def _message(elapsed: float, net: list[dict[str, Any]] | None) -> Msg:
    """The reminder's text, translated in the player's language by ``notify``."""
    duration = _duration(elapsed)
    if net is None:
        return Msg(
            "You have been playing for %(duration)s. Your session result is not available "
            "right now.",
            duration=duration,
        )
    if not net:
        return Msg(
            "You have been playing for %(duration)s. You have not placed any bets this session.",
            duration=duration,
        )
    results = ", ".join(f"{r['net']} {r['currency']}" for r in net)
    return Msg(
        "You have been playing for %(duration)s. Net result this session: %(results)s.",
        duration=duration,
        results=results,
    )


def send_due(now: datetime | None = None) -> int:
    """Send every reminder that is due now; returns how many were sent (idempotent)."""
    now = now or datetime.now(UTC)
    rows = db.session.execute(
        select(User.id, User.last_login_at, RealityCheckSetting.interval_minutes)
        .join(RealityCheckSetting, RealityCheckSetting.user_id == User.id)
        .where(
            RealityCheckSetting.interval_minutes.is_not(None),
            User.role_id == PLAYER,
            User.status == "active",
        )
    ).all()
    online = presence.online_since([row.id for row in rows])
    sent = 0
    for row in rows:
        if row.id not in online:
            continue
        start_ts = online[row.id]
        if row.last_login_at is not None:
            start_ts = max(start_ts, row.last_login_at.timestamp())
        start_ts = int(start_ts)
        elapsed = now.timestamp() - start_ts
        slot = int(elapsed // (row.interval_minutes * 60))
        if slot < 1:
            continue
        try:
            with atomic():
                start = datetime.fromtimestamp(start_ts, UTC)
                net = _net_result(row.id, start)
                created = notifications.notify(
                    row.id,
                    "reality_check",
                    Msg("Reality check"),
                    _message(elapsed, net),
                    data={
                        "session_started_at": start.isoformat(),
                        "session_minutes": int(elapsed // 60),
                        "interval_minutes": row.interval_minutes,
                        "net_result": net,
                    },
                    dedupe_key=f"reality_check:{row.id}:{start_ts}:{slot}",
                )
        except Exception:
            # One player's failure (e.g. the ledger source) must not starve the others.
            log.exception("reality check for user %s failed", row.id)
            continue
        sent += created is not None
    return sent
