"""Content items and their per-language versions.

An item (``ContentItem``) holds what does not depend on the language: its kind, the page slug,
the FAQ category and order, the banner position, the scheduling window, the audience and the
image. Each language has one ``ContentVersion`` row holding both the **draft** staff edit and
the **published** copy players see: publishing copies the draft over the published copy,
unpublishing clears it. Bodies are sanitised before they are stored (``content.sanitize``), so
neither copy ever holds script.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.base import UTCDateTime, utcnow
from app.core.db import BigIntPK
from app.core.extensions import Model

KINDS = ("page", "faq", "announcement", "banner")
AUDIENCES = ("all", "segment", "vip")
#: Where the player app shows a banner.
BANNER_POSITIONS = ("home_top", "home_middle", "lobby", "cashier", "sidebar")


class ContentItem(Model):
    __tablename__ = "content_items"
    __table_args__ = (
        CheckConstraint("kind IN ('page', 'faq', 'announcement', 'banner')", name="kind"),
        CheckConstraint("audience IN ('all', 'segment', 'vip')", name="audience"),
        CheckConstraint(
            "audience != 'segment' OR segment_id IS NOT NULL", name="segment_audience_has_segment"
        ),
        CheckConstraint(
            "audience != 'vip' OR vip_level IS NOT NULL", name="vip_audience_has_level"
        ),
        CheckConstraint("kind != 'page' OR slug IS NOT NULL", name="page_has_slug"),
        CheckConstraint("kind != 'banner' OR position IS NOT NULL", name="banner_has_position"),
        CheckConstraint(
            "ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at", name="window_order"
        ),
        # One page per slug (NULL slugs of other kinds do not collide).
        UniqueConstraint("kind", "slug", name="uq_content_items_kind_slug"),
        Index("ix_content_items_kind_position", "kind", "position"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    #: Pages only: the address in the player app (``/api/content/pages/<slug>``).
    slug: Mapped[str | None] = mapped_column(String(120))
    #: FAQ only: the group an entry belongs to.
    category: Mapped[str | None] = mapped_column(String(64))
    #: FAQ and banners: ascending order within a category / position.
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    #: Banners only: where the player app shows it.
    position: Mapped[str | None] = mapped_column(String(32))
    #: Announcements and banners: shown only within [starts_at, ends_at) (open ends allowed).
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    audience: Mapped[str] = mapped_column(String(16), default="all")
    segment_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("crm_segments.id"))
    #: The lowest loyalty level that sees the item (that level and every higher one).
    vip_level: Mapped[str | None] = mapped_column(String(32), ForeignKey("loyalty_levels.code"))
    #: ``/media/content/<name>``: an image checked by ``core.uploads``.
    image_url: Mapped[str | None] = mapped_column(String(255))
    #: Staff's handle for the item in lists (never shown to players).
    name: Mapped[str] = mapped_column(String(120))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    versions: Mapped[list[ContentVersion]] = relationship(
        back_populates="item", order_by="ContentVersion.language", lazy="selectin"
    )

    def version(self, language: str) -> ContentVersion | None:
        return next((v for v in self.versions if v.language == language), None)

    @property
    def published_languages(self) -> list[str]:
        return [v.language for v in self.versions if v.published_at is not None]


class ContentVersion(Model):
    __tablename__ = "content_versions"
    __table_args__ = (
        UniqueConstraint("item_id", "language", name="uq_content_versions_item_language"),
        CheckConstraint(
            "(published_at IS NULL) = (published_title IS NULL)", name="published_is_whole"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    item_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("content_items.id"))
    #: A lower-case language code (``en``, ``pt-br``).
    language: Mapped[str] = mapped_column(String(16))
    draft_title: Mapped[str] = mapped_column(String(200))
    #: Sanitised HTML (``content.sanitize``): what staff edit.
    draft_body: Mapped[str] = mapped_column(Text, default="")
    #: The copy players see (all NULL while unpublished).
    published_title: Mapped[str | None] = mapped_column(String(200))
    published_body: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    #: Announcements: when this published copy was pushed live (``None``: not yet; the
    #: periodic ``push_due_announcements`` pushes it once its window opens).
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    item: Mapped[ContentItem] = relationship(back_populates="versions")

    @property
    def has_unpublished_changes(self) -> bool:
        return self.published_at is None or (
            self.draft_title != self.published_title or self.draft_body != self.published_body
        )
