"""Staff edit content: items, per-language drafts, publishing.

Invariants:
* Every change is one transaction (``atomic``) with its audit row (``content.*`` actions,
  before/after); a refused change (400/404/409) writes nothing.
* Drafts are sanitised on save (``content.sanitize``); publishing copies the sanitised draft,
  so the published copy never holds anything the sanitiser did not let through.
* Publishing an announcement whose window is open pushes ``content.announcement`` (through
  ``core.events.publish``, after commit) to the players it targets: the ``global`` room for
  everyone, else the ``user:<id>`` room of each player in the CRM segment or at/above the
  loyalty level (resolved and published by a durable job, ``fan_out_announcement``, outside
  the request). One published before its window opens is pushed by the periodic
  ``push_due_announcements`` once it opens. Each published copy is pushed once
  (``ContentVersion.pushed_at``, claimed by a conditional UPDATE).
* Pages and FAQ entries are public: their audience is always ``all`` and they have no window.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from app.bonus.models import LoyaltyAccount, LoyaltyLevel
from app.content import languages
from app.content.models import AUDIENCES, BANNER_POSITIONS, KINDS, ContentItem, ContentVersion
from app.content.sanitize import clean_html, clean_title
from app.core import audit, events, outbox
from app.core.base import utcnow
from app.core.db import atomic, rowcount
from app.core.errors import Conflict, NotFound, ValidationError
from app.core.extensions import db
from app.messaging import crm
from app.messaging.models import CrmSegment

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,118}[a-z0-9])?$")
ITEM_FIELDS = (
    "name",
    "slug",
    "category",
    "sort_order",
    "position",
    "starts_at",
    "ends_at",
    "audience",
    "segment_id",
    "vip_level",
)
#: Room of every connected socket (``app.realtime.handlers.GLOBAL_ROOM``).
GLOBAL_ROOM = "global"
ANNOUNCEMENT_EVENT = "content.announcement"


def item_snapshot(item: ContentItem) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(item, name) for name in ITEM_FIELDS}
    for key in ("starts_at", "ends_at"):
        out[key] = out[key].isoformat() if out[key] else None
    out["image_url"] = item.image_url
    return out


def _text(value: Any, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError.field(field, "Must be a string")
    text = value.strip()
    if "\x00" in text:
        raise ValidationError.field(field, "NUL bytes are not allowed")
    if len(text) > max_length:
        raise ValidationError.field(field, f"At most {max_length} characters")
    return text or None


def _check(item: ContentItem) -> None:
    """The item's fields make sense together for its kind (else a 400 naming the field)."""
    if not item.name:
        raise ValidationError.field("name", "A name is required")
    if item.kind == "page":
        if not item.slug or not SLUG.match(item.slug):
            raise ValidationError.field(
                "slug", "Lower-case letters, digits and dashes (e.g. terms-and-conditions)"
            )
    elif item.slug is not None:
        raise ValidationError.field("slug", "Only pages have a slug")
    if item.kind != "faq" and item.category is not None:
        raise ValidationError.field("category", "Only FAQ entries have a category")
    if item.kind == "banner":
        if item.position not in BANNER_POSITIONS:
            raise ValidationError.field("position", f"One of: {', '.join(BANNER_POSITIONS)}")
    elif item.position is not None:
        raise ValidationError.field("position", "Only banners have a position")
    if item.kind in ("page", "faq"):
        if item.audience != "all" or item.segment_id or item.vip_level:
            raise ValidationError.field("audience", "Pages and FAQ entries are public")
        if item.starts_at or item.ends_at:
            raise ValidationError.field("starts_at", "Pages and FAQ entries have no window")
    if not -1_000_000 <= item.sort_order <= 1_000_000:
        raise ValidationError.field("sort_order", "Between -1000000 and 1000000")
    if item.audience not in AUDIENCES:
        raise ValidationError.field("audience", f"One of: {', '.join(AUDIENCES)}")
    if item.audience == "segment":
        if item.segment_id is None or db.session.get(CrmSegment, item.segment_id) is None:
            raise ValidationError.field("segment_id", "No such CRM segment")
    elif item.segment_id is not None:
        raise ValidationError.field("segment_id", "Only for the segment audience")
    if item.audience == "vip":
        if item.vip_level is None or db.session.get(LoyaltyLevel, item.vip_level) is None:
            raise ValidationError.field("vip_level", "No such loyalty level")
    elif item.vip_level is not None:
        raise ValidationError.field("vip_level", "Only for the vip audience")
    if item.starts_at and item.ends_at and item.ends_at <= item.starts_at:
        raise ValidationError.field("ends_at", "Must be after the start")


def _apply(item: ContentItem, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if key not in ITEM_FIELDS:
            raise ValidationError.field(key, "Unknown field")
        if key == "name":
            value = _text(value, "name", 120)
        elif key == "slug":
            value = _text(value, "slug", 120)
            value = value.lower() if value else None
        elif key == "category":
            value = _text(value, "category", 64)
        elif key == "position":
            value = _text(value, "position", 32)
        elif key == "vip_level":
            value = _text(value, "vip_level", 32)
        elif key == "audience":
            value = value or "all"
        elif key == "sort_order":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError.field("sort_order", "Must be an integer")
        elif key in ("starts_at", "ends_at") and not isinstance(value, datetime | None):
            raise ValidationError.field(key, "Must be a date and time")
        setattr(item, key, value)


def _slug_free(item: ContentItem) -> None:
    if item.kind != "page":
        return
    taken = db.session.scalar(
        select(ContentItem.id).where(
            ContentItem.kind == "page", ContentItem.slug == item.slug, ContentItem.id != item.id
        )
    )
    if taken is not None:
        raise Conflict(f"A page with the slug {item.slug} exists")


def create_item(kind: str, fields: dict[str, Any], *, actor: Any) -> ContentItem:
    if kind not in KINDS:
        raise ValidationError.field("kind", f"One of: {', '.join(KINDS)}")
    with atomic():
        item = ContentItem(kind=kind, audience="all", sort_order=0, name="")
        item.created_by_id = getattr(actor, "id", None)
        _apply(item, {k: v for k, v in fields.items() if k != "kind"})
        _check(item)
        _slug_free(item)
        db.session.add(item)
        db.session.flush()  # the id goes into the audit row
        audit.record(
            "content.create",
            actor=actor,
            target_type="content_item",
            target_id=item.id,
            after={"kind": kind, **item_snapshot(item)},
        )
    return item


def get_item(item_id: int) -> ContentItem:
    item = db.session.get(ContentItem, item_id)
    if item is None:
        raise NotFound("No such content item")
    return item


def update_item(item_id: int, changes: dict[str, Any], *, actor: Any) -> ContentItem:
    with atomic():
        item = get_item(item_id)
        before = item_snapshot(item)
        _apply(item, changes)
        _check(item)
        _slug_free(item)
        after = item_snapshot(item)
        if after != before:
            audit.record(
                "content.update",
                actor=actor,
                target_type="content_item",
                target_id=item.id,
                before=before,
                after=after,
            )
    return item


def list_items(kind: str | None, page: int, limit: int) -> tuple[list[ContentItem], int]:
    query = select(ContentItem)
    if kind:
        query = query.where(ContentItem.kind == kind)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(ContentItem.id.desc()).offset((page - 1) * limit).limit(limit)
    )
    return list(rows), int(total)


def save_draft(item_id: int, language: str, title: str, body: str, *, actor: Any) -> ContentVersion:
    """Create or replace the draft of ``language`` (sanitised); the published copy stays."""
    code = languages.normalize(language)
    clean_t = clean_title(title)
    clean_b = clean_html(body)
    with atomic():
        item = get_item(item_id)
        version = item.version(code)
        before = None
        if version is None:
            version = ContentVersion(item_id=item.id, language=code)
            db.session.add(version)
            item.versions.append(version)
        else:
            before = {"title": version.draft_title, "body": version.draft_body}
        version.draft_title, version.draft_body = clean_t, clean_b
        version.updated_by_id = getattr(actor, "id", None)
        version.updated_at = utcnow()
        after = {"title": clean_t, "body": clean_b}
        if after != before:
            audit.record(
                "content.draft",
                actor=actor,
                target_type="content_item",
                target_id=f"{item.id}:{code}",
                before=before,
                after=after,
            )
    return version


def _version(item: ContentItem, language: str) -> ContentVersion:
    version = item.version(languages.normalize(language))
    if version is None:
        raise NotFound("This item has no version in that language")
    return version


def publish(item_id: int, language: str, *, actor: Any) -> ContentVersion:
    with atomic():
        item = get_item(item_id)
        version = _version(item, language)
        before = {"title": version.published_title, "body": version.published_body}
        version.published_title = version.draft_title
        version.published_body = version.draft_body
        version.published_at = utcnow()
        version.published_by_id = getattr(actor, "id", None)
        audit.record(
            "content.publish",
            actor=actor,
            target_type="content_item",
            target_id=f"{item.id}:{version.language}",
            before=before,
            after={"title": version.published_title, "body": version.published_body},
        )
        version.pushed_at = None
        if item.kind == "announcement" and in_window(item):
            push_announcement(item, version)
            version.pushed_at = utcnow()
    return version


def unpublish(item_id: int, language: str, *, actor: Any) -> ContentVersion:
    with atomic():
        item = get_item(item_id)
        version = _version(item, language)
        if version.published_at is None:
            raise Conflict("This version is not published")
        before = {"title": version.published_title, "body": version.published_body}
        version.published_title = version.published_body = None
        version.published_at = version.published_by_id = version.pushed_at = None
        audit.record(
            "content.unpublish",
            actor=actor,
            target_type="content_item",
            target_id=f"{item.id}:{version.language}",
            before=before,
        )
    return version


def in_window(item: ContentItem, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (item.starts_at is None or item.starts_at <= now) and (
        item.ends_at is None or item.ends_at > now
    )


def announcement_payload(item: ContentItem, version: ContentVersion) -> dict[str, Any]:
    return {
        "id": item.id,
        "language": version.language,
        "title": version.published_title,
        "body": version.published_body,
        "image_url": item.image_url,
        "starts_at": item.starts_at.isoformat() if item.starts_at else None,
        "ends_at": item.ends_at.isoformat() if item.ends_at else None,
        "published_at": version.published_at.isoformat() if version.published_at else None,
    }


def audience_user_ids(item: ContentItem) -> list[int] | None:
    """The players an item targets (``None``: everyone)."""
    if item.audience == "segment" and item.segment_id is not None:
        segment = db.session.get_one(CrmSegment, item.segment_id)
        return crm.user_ids(segment.condition)
    if item.audience == "vip" and item.vip_level is not None:
        floor = db.session.get_one(LoyaltyLevel, item.vip_level).min_points
        return list(
            db.session.scalars(
                select(LoyaltyAccount.user_id)
                .join(LoyaltyLevel, LoyaltyLevel.code == LoyaltyAccount.level_code)
                .where(LoyaltyLevel.min_points >= floor)
                .order_by(LoyaltyAccount.user_id)
            )
        )
    return None


#: A targeted announcement's events are published this many players per transaction.
FAN_OUT_BATCH = 500


def push_announcement(item: ContentItem, version: ContentVersion) -> None:
    """Queue the live event for the item's audience (caller owns the transaction).

    Everyone: one event to the ``global`` room, after commit. A segment or VIP audience: a
    durable job (outbox) that resolves the players and publishes one event per player, in
    batches, outside the publishing request."""
    if item.audience == "all":
        events.publish(ANNOUNCEMENT_EVENT, announcement_payload(item, version), room=GLOBAL_ROOM)
        return
    if version.published_at is None:
        return  # only a published copy is pushed
    outbox.add_job(
        "app.content.jobs.fan_out_announcement",
        version.id,
        version.published_at.isoformat(),
        queue="notifications",
    )


def fan_out_announcement(version_id: int, published_at: str) -> int:
    """Publish a targeted announcement to each of its players (the job). A copy unpublished
    or replaced since it was queued is not sent. Returns how many players."""
    version = db.session.get(ContentVersion, version_id)
    if version is None or version.published_at is None:
        return 0
    if version.published_at.isoformat() != published_at:
        return 0  # published again since: that publication queued its own fan-out
    item = version.item
    payload = announcement_payload(item, version)
    targets = audience_user_ids(item) or []
    for start in range(0, len(targets), FAN_OUT_BATCH):
        with atomic():
            for user_id in targets[start : start + FAN_OUT_BATCH]:
                events.publish(ANNOUNCEMENT_EVENT, payload, room=events.user_room(user_id))
    return len(targets)


def push_due_announcements(now: datetime | None = None) -> int:
    """Push every published announcement whose window has opened since it was published
    (periodic; idempotent: a copy is claimed by setting ``pushed_at`` where it is NULL, so
    two runs never push it twice). Returns how many were pushed."""
    now = now or utcnow()
    due = select(ContentVersion.id).join(ContentItem, ContentItem.id == ContentVersion.item_id)
    due = due.where(
        ContentItem.kind == "announcement",
        ContentVersion.published_at.is_not(None),
        ContentVersion.pushed_at.is_(None),
        ContentItem.starts_at.is_(None) | (ContentItem.starts_at <= now),
        ContentItem.ends_at.is_(None) | (ContentItem.ends_at > now),
    )
    pushed = 0
    for version_id in list(db.session.scalars(due.order_by(ContentVersion.id).limit(500))):
        with atomic():
            claimed = rowcount(
                db.session.execute(
                    update(ContentVersion)
                    .where(ContentVersion.id == version_id, ContentVersion.pushed_at.is_(None))
                    .values(pushed_at=now)
                )
            )
            if claimed != 1:
                continue  # another run took it
            version = db.session.get_one(ContentVersion, version_id)
            db.session.refresh(version)
            push_announcement(version.item, version)
            pushed += 1
    return pushed
