"""Operator settings shared by every process, stored in the ``settings`` table.

Invariants: a setting changes inside ``atomic()`` together with its audit row.
"""

from __future__ import annotations

from typing import Any

from app.extensions import db
from app.models.settings import Setting
from app.services import audit

MAINTENANCE = "maintenance_mode"


def get(key: str, default: Any = None) -> Any:
    row = db.session.get(Setting, key)
    return default if row is None else row.value


def put(key: str, value: Any, *, actor: Any = None, reason: str | None = None) -> None:
    """Store ``value`` and audit the change (caller owns the transaction)."""
    row = db.session.get(Setting, key)
    before = None if row is None else row.value
    if row is None:
        row = Setting(key=key)
        db.session.add(row)
    row.value = value
    row.updated_by = getattr(actor, "id", actor)
    audit.record(
        "settings.update",
        actor=actor,
        target_type="setting",
        target_id=key,
        before={"value": before},
        after={"value": value},
        reason=reason,
    )


def maintenance_state() -> dict[str, Any]:
    value = get(MAINTENANCE) or {}
    return {"enabled": bool(value.get("enabled")), "message": value.get("message")}


def set_maintenance(enabled: bool, *, message: str | None = None, actor: Any = None) -> None:
    put(MAINTENANCE, {"enabled": enabled, "message": message}, actor=actor)
