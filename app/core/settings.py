"""Operator settings shared by every process, stored in the ``settings`` table.

Invariants: a setting changes inside ``atomic()`` together with its audit row. The gates
that run on every request (maintenance, network access rules) read through ``cached``: a
change reaches this process at once and the other processes within
``SETTINGS_CACHE_SECONDS``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app

from app.core import audit, events
from app.core.db import on_commit
from app.core.extensions import db
from app.core.models import Setting

MAINTENANCE = "maintenance_mode"
#: Pushed to every socket (room ``global``) when maintenance mode is switched on or off.
MAINTENANCE_EVENT = "platform.maintenance"


def get(key: str, default: Any = None) -> Any:
    row = db.session.get(Setting, key)
    return default if row is None else row.value


#: (database, key) -> (expires at, value), per process.
_cache: dict[tuple[str, str], tuple[float, Any]] = {}


def cached(key: str, default: Any = None) -> Any:
    """``get`` through the per-process cache (``SETTINGS_CACHE_SECONDS``, 0 = no cache)."""
    ttl = float(current_app.config.get("SETTINGS_CACHE_SECONDS", 0))
    if ttl <= 0:
        return get(key, default)
    slot = (current_app.config["SQLALCHEMY_DATABASE_URI"], key)
    now = time.monotonic()
    hit = _cache.get(slot)
    if hit is None or hit[0] <= now:
        hit = _cache[slot] = (now + ttl, get(key))
    return default if hit[1] is None else hit[1]


def _forget(key: str) -> None:
    for slot in [slot for slot in _cache if slot[1] == key]:
        _cache.pop(slot, None)


def put(key: str, value: Any, *, actor: Any = None, reason: str | None = None) -> None:
    """Store ``value`` and audit the change (caller owns the transaction)."""
    row = db.session.get(Setting, key)
    before = None if row is None else row.value
    if row is None:
        row = Setting(key=key)
        db.session.add(row)
    row.value = value
    row.updated_by = getattr(actor, "id", actor)
    _forget(key)
    on_commit(lambda: _forget(key))
    audit.record(
        "settings.update",
        actor=actor,
        target_type="setting",
        target_id=key,
        before={"value": before},
        after={"value": value},
        reason=reason,
    )
    if key == MAINTENANCE:
        _announce_maintenance(before, value)


def _announce_maintenance(before: Any, after: Any) -> None:
    """Tell every connected player (after commit) when maintenance is switched on or off,
    or its message changes while it is on."""
    was, now = before or {}, after or {}
    on = bool(now.get("enabled"))
    if on == bool(was.get("enabled")) and (not on or now.get("message") == was.get("message")):
        return
    events.publish(MAINTENANCE_EVENT, {"enabled": on, "message": now.get("message")}, room="global")


def maintenance_state() -> dict[str, Any]:
    value = cached(MAINTENANCE) or {}
    return {"enabled": bool(value.get("enabled")), "message": value.get("message")}


def set_maintenance(enabled: bool, *, message: str | None = None, actor: Any = None) -> None:
    put(MAINTENANCE, {"enabled": enabled, "message": message}, actor=actor)


def put_state(key: str, value: Any) -> None:
    """Store a job's own bookkeeping (a sweep's high-water mark) in the same table, without an
    audit row: no operator decided it, and a per-minute job would flood the audit trail.
    Caller owns the transaction."""
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value))
    else:
        row.value = value
