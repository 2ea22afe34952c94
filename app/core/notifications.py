"""Notifications: persisted per user, pushed live as ``notification`` after commit.

Invariants:
* A notification exists before anybody is told about it (push after commit).
* A producer that may run twice (a retried job, a periodic scan) passes ``dedupe_key``; the
  unique index turns the second insert into a no-op and nothing is pushed twice.
* Users read and mark only their own notifications (another user's id is "not found").
* Title and message are written in the recipient's language: a ``Msg`` (``app.core.i18n``) is
  translated in the user's stored language when it is created (a name, staff text: as is).
* A notification whose category (``preferences.category_of_type``) the user turned off for
  ``in_app`` is neither stored nor pushed (``None``); mandatory categories always are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.core import i18n, preferences
from app.core.base import utcnow
from app.core.db import rowcount
from app.core.errors import NotFound
from app.core.events import publish, user_room
from app.core.extensions import db
from app.core.models import Notification

MAX_TITLE, MAX_MESSAGE = 200, 2000


def as_json(n: Notification) -> dict[str, Any]:
    """The guide's payload (type, title, message, timestamp) plus id, data and read state."""
    return {
        "id": n.id,
        "type": n.type,
        "title": n.title,
        "message": n.message,
        "data": n.data,
        "read": n.read_at is not None,
        "read_at": n.read_at.isoformat() if n.read_at else None,
        "timestamp": n.created_at.isoformat(),
    }


def notify(
    user_id: int,
    type: str,
    title: str | i18n.Msg,
    message: str | i18n.Msg,
    *,
    data: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    category: str | None = None,
) -> Notification | None:
    """Store a notification and push it after commit; ``None`` if ``dedupe_key`` was seen
    or the user turned this category off in the app."""
    if not preferences.allowed(user_id, category or preferences.category_of_type(type), "in_app"):
        return None
    if isinstance(title, i18n.Msg) or isinstance(message, i18n.Msg):
        title, message = i18n.in_language(i18n.language_of_user(user_id), title, message)
    values = {
        "user_id": user_id,
        "type": type[:32],
        "title": title[:MAX_TITLE],
        "message": message[:MAX_MESSAGE],
        "data": data,
        "dedupe_key": dedupe_key,
        "created_at": utcnow(),
    }
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Notification).values(**values)
    if dedupe_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
    new_id = db.session.execute(stmt.returning(Notification.id)).scalar_one_or_none()
    if new_id is None:
        return None
    notification = db.session.get_one(Notification, new_id)
    publish("notification", as_json(notification), room=user_room(user_id))
    return notification


def list_for(
    user_id: int, *, page: int = 1, limit: int = 20, unread_only: bool = False
) -> tuple[list[Notification], int]:
    where = [Notification.user_id == user_id]
    if unread_only:
        where.append(Notification.read_at.is_(None))
    total = db.session.execute(
        select(func.count()).select_from(Notification).where(*where)
    ).scalar_one()
    rows = db.session.scalars(
        select(Notification)
        .where(*where)
        .order_by(Notification.id.desc())
        .limit(limit)
        .offset((page - 1) * limit)
    ).all()
    return list(rows), total


def unread_count(user_id: int) -> int:
    return db.session.execute(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
    ).scalar_one()


def mark_read(user_id: int, notification_id: int) -> Notification:
    notification = db.session.scalar(
        select(Notification).where(
            Notification.id == notification_id, Notification.user_id == user_id
        )
    )
    if notification is None:
        raise NotFound("Notification not found")
    if notification.read_at is None:
        notification.read_at = utcnow()
    return notification


def mark_all_read(user_id: int) -> int:
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    return rowcount(result)
