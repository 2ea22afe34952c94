"""What the player app reads: published versions only, in the reader's language.

Invariants:
* Only a published version is ever returned (the draft never leaves the staff API).
* Announcements and banners are returned only inside their window and only to their
  audience: ``all`` to anyone; ``segment`` to a signed-in player the CRM segment selects right
  now; ``vip`` to a signed-in player at or above the loyalty level. Anonymous readers get
  ``all`` only.
* Each item is served in the version ``languages.choose`` picks (announcements and banners
  for a signed-in player whose request names no language: their profile language); an item
  with no version in the requested language nor in the fallback language is left out (a
  page: 404).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from werkzeug.datastructures import LanguageAccept

from app.bonus.models import LoyaltyAccount, LoyaltyLevel
from app.content import languages
from app.content.models import ContentItem, ContentVersion
from app.core.base import utcnow
from app.core.errors import NotFound, ValidationError
from app.core.extensions import db
from app.messaging import crm

#: At most this many announcements or banners in one answer.
MAX_ITEMS = 100


def _published(item: ContentItem, requested: str | None, accept: LanguageAccept | None):
    versions = {v.language: v for v in item.versions if v.published_at is not None}
    code = languages.choose(versions, requested, accept)
    return None if code is None else versions[code]


def _json(item: ContentItem, version: ContentVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "kind": item.kind,
        "language": version.language,
        "title": version.published_title,
        "body": version.published_body,
        "published_at": version.published_at.isoformat() if version.published_at else None,
    }
    if item.kind == "page":
        out["slug"] = item.slug
    if item.kind == "faq":
        out["category"] = item.category
        out["sort_order"] = item.sort_order
    if item.kind in ("announcement", "banner"):
        out["image_url"] = item.image_url
        out["starts_at"] = item.starts_at.isoformat() if item.starts_at else None
        out["ends_at"] = item.ends_at.isoformat() if item.ends_at else None
    if item.kind == "banner":
        out["position"] = item.position
        out["sort_order"] = item.sort_order
    return out


def _lang(requested: str | None) -> str | None:
    return languages.normalize(requested, field="lang") if requested else None


def page(slug: str, requested: str | None, accept: LanguageAccept | None) -> dict[str, Any]:
    lang = _lang(requested)
    if len(slug) > 120 or "\x00" in slug:
        raise NotFound("No such page")
    item = db.session.scalar(
        select(ContentItem).where(ContentItem.kind == "page", ContentItem.slug == slug.lower())
    )
    version = None if item is None else _published(item, lang, accept)
    if item is None or version is None:
        raise NotFound("No such page")
    return _json(item, version)


def faq(
    requested: str | None, accept: LanguageAccept | None, category: str | None = None
) -> list[dict[str, Any]]:
    lang = _lang(requested)
    query = select(ContentItem).where(ContentItem.kind == "faq")
    if category:
        query = query.where(ContentItem.category == category)
    rows = db.session.scalars(
        query.order_by(ContentItem.category, ContentItem.sort_order, ContentItem.id)
    )
    out = []
    for item in rows:
        version = _published(item, lang, accept)
        if version is not None:
            out.append(_json(item, version))
    return out


def _visible(kind: str, user: Any, position: str | None = None) -> list[ContentItem]:
    now = utcnow()
    query = select(ContentItem).where(
        ContentItem.kind == kind,
        or_(ContentItem.starts_at.is_(None), ContentItem.starts_at <= now),
        or_(ContentItem.ends_at.is_(None), ContentItem.ends_at > now),
        ContentItem.versions.any(ContentVersion.published_at.is_not(None)),
    )
    if position is not None:
        query = query.where(ContentItem.position == position)
    if user is None:
        query = query.where(ContentItem.audience == "all")
    query = query.order_by(ContentItem.sort_order, ContentItem.starts_at.desc(), ContentItem.id)
    items = list(db.session.scalars(query.limit(MAX_ITEMS * 4)))
    if user is None:
        return items[:MAX_ITEMS]
    level_floor = _level_points(user.id)
    segments: dict[int, bool] = {}
    out = []
    for item in items:
        if item.audience == "segment" and item.segment_id is not None:
            if item.segment_id not in segments:
                segments[item.segment_id] = crm.in_segment(item.segment_id, user.id)
            if not segments[item.segment_id]:
                continue
        elif item.audience == "vip":
            needed = db.session.get(LoyaltyLevel, item.vip_level) if item.vip_level else None
            if needed is None or level_floor is None or level_floor < needed.min_points:
                continue
        out.append(item)
        if len(out) == MAX_ITEMS:
            break
    return out


def _level_points(user_id: int) -> int | None:
    """The ``min_points`` of the player's loyalty level (``None``: no level yet)."""
    return db.session.scalar(
        select(LoyaltyLevel.min_points)
        .join(LoyaltyAccount, LoyaltyAccount.level_code == LoyaltyLevel.code)
        .where(LoyaltyAccount.user_id == user_id)
    )


def _localized(items: list[ContentItem], lang: str | None, accept: LanguageAccept | None):
    out = []
    for item in items:
        version = _published(item, lang, accept)
        if version is not None:
            out.append(_json(item, version))
    return out


def _reader_lang(user: Any, requested: str | None, accept: LanguageAccept | None) -> str | None:
    """``?lang=``; else, when the request names no language at all, the signed-in player's
    profile language (an unusable one is ignored)."""
    if requested or accept or user is None or not getattr(user, "language", None):
        return _lang(requested)
    try:
        return languages.normalize(user.language)
    except ValidationError:
        return None


def announcements(
    user: Any, requested: str | None, accept: LanguageAccept | None
) -> list[dict[str, Any]]:
    lang = _reader_lang(user, requested, accept)
    return _localized(_visible("announcement", user), lang, accept)


def banners(
    user: Any, position: str | None, requested: str | None, accept: LanguageAccept | None
) -> list[dict[str, Any]]:
    lang = _reader_lang(user, requested, accept)
    return _localized(_visible("banner", user, position), lang, accept)
