"""The audit log viewer: read-only, filtered by action, actor, target and date."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import render_template, request
from sqlalchemy import func, select

from app.blueprints.console.core import bp, console_view, thousands
from app.blueprints.console.listing import paginate
from app.core.db import parse_row_id
from app.core.extensions import db
from app.core.models import AuditLog
from app.core.money import format_minor
from app.identity.models import User

SORTABLE = {"id": AuditLog.id, "action": AuditLog.action, "actor": AuditLog.actor_id}


def _day(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def _actor_id(value: str) -> int | None:
    """An actor filter is a user id or a username; ``-1`` matches nothing when unknown."""
    row_id = parse_row_id(value)
    if row_id is not None:
        return row_id
    found = db.session.scalar(select(User.id).where(func.lower(User.username) == value.lower()))
    return found if found is not None else -1


#: Audit keys that hold integer minor units (``wallet.adjust`` writes ``balance``, ``amount``).
MONEY_KEYS = {"amount", "balance", "bonus_balance", "cash", "bonus", "held", "held_balance"}


def _is_money(key: str) -> bool:
    return key in MONEY_KEYS or key.endswith("_minor")


def _shown(key: str, value: Any, currency: str | None) -> str:
    if value is None:
        return "—"
    if currency and _is_money(key) and isinstance(value, int) and not isinstance(value, bool):
        return f"{thousands(format_minor(value, currency))} {currency}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def audit_changes(before: Any, after: Any) -> list[tuple[str, str, str]]:
    """``(label, before, after)`` per key, money in its currency ("1,510.00 EUR", not the
    stored minor units "151000"), labels in words ("Bonus balance")."""
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    currency = new.get("currency") or old.get("currency")
    currency = currency if isinstance(currency, str) else None
    keys = list(dict.fromkeys([*old, *new]))
    return [
        (
            key.removesuffix("_minor").replace("_", " ").capitalize(),
            _shown(key, old.get(key), currency) if key in old else "",
            _shown(key, new.get(key), currency) if key in new else "",
        )
        for key in keys
    ]


@bp.get("/audit")
@console_view("audit.read")
def audit_log():
    args = request.args
    filters = {
        key: args.get(key, "").strip()[:100]
        for key in ("action", "actor", "target_type", "target_id", "since", "until")
    }
    query = select(AuditLog)
    if filters["action"]:
        # "admin." lists every staff decision; a full name matches exactly.
        if filters["action"].endswith("."):
            query = query.where(AuditLog.action.startswith(filters["action"], autoescape=True))
        else:
            query = query.where(AuditLog.action == filters["action"])
    if filters["actor"]:
        query = query.where(AuditLog.actor_id == _actor_id(filters["actor"]))
    if filters["target_type"]:
        query = query.where(AuditLog.target_type == filters["target_type"])
    if filters["target_id"]:
        query = query.where(AuditLog.target_id == filters["target_id"])
    since, until = _day(filters["since"]), _day(filters["until"])
    if since:
        query = query.where(AuditLog.created_at >= since)
    if until:
        query = query.where(AuditLog.created_at < until + timedelta(days=1))
    listing = paginate(query, sortable=SORTABLE, default_sort="id", filters=filters)
    actor_ids = {row.actor_id for row in listing.items if row.actor_id}
    actors = (
        dict(db.session.execute(select(User.id, User.username).where(User.id.in_(actor_ids))).all())
        if actor_ids
        else {}
    )
    actions = db.session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)).all()
    return render_template(
        "console/audit/list.html",
        listing=listing,
        actors=actors,
        actions=actions,
        audit_changes=audit_changes,
    )
