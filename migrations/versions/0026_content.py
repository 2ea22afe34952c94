"""content: CMS pages, FAQ, announcements and banners with per-language drafts (issue 18)

Revision ID: 0026
Revises: 0030
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0026"
down_revision = "0030"
branch_labels = None
depends_on = None


def _id():
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, app.core.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table(
        "content_items",
        _id(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("slug", sa.String(length=120), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("position", sa.String(length=32), nullable=True),
        _when("starts_at"),
        _when("ends_at"),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("segment_id", sa.BigInteger(), nullable=True),
        sa.Column("vip_level", sa.String(length=32), nullable=True),
        sa.Column("image_url", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
        _when("created_at", False),
        _when("updated_at", False),
        sa.CheckConstraint(
            "kind IN ('page', 'faq', 'announcement', 'banner')", name=op.f("ck_content_items_kind")
        ),
        sa.CheckConstraint(
            "audience IN ('all', 'segment', 'vip')", name=op.f("ck_content_items_audience")
        ),
        sa.CheckConstraint(
            "audience != 'segment' OR segment_id IS NOT NULL",
            name=op.f("ck_content_items_segment_audience_has_segment"),
        ),
        sa.CheckConstraint(
            "audience != 'vip' OR vip_level IS NOT NULL",
            name=op.f("ck_content_items_vip_audience_has_level"),
        ),
        sa.CheckConstraint(
            "kind != 'page' OR slug IS NOT NULL", name=op.f("ck_content_items_page_has_slug")
        ),
        sa.CheckConstraint(
            "kind != 'banner' OR position IS NOT NULL",
            name=op.f("ck_content_items_banner_has_position"),
        ),
        sa.CheckConstraint(
            "ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at",
            name=op.f("ck_content_items_window_order"),
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["crm_segments.id"], name=op.f("fk_content_items_segment_id_crm_segments")
        ),
        sa.ForeignKeyConstraint(
            ["vip_level"],
            ["loyalty_levels.code"],
            name=op.f("fk_content_items_vip_level_loyalty_levels"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_content_items_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_items")),
        sa.UniqueConstraint("kind", "slug", name="uq_content_items_kind_slug"),
    )
    op.create_index(
        "ix_content_items_kind_position", "content_items", ["kind", "position"], unique=False
    )
    op.create_table(
        "content_versions",
        _id(),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("draft_title", sa.String(length=200), nullable=False),
        sa.Column("draft_body", sa.Text(), nullable=False),
        sa.Column("published_title", sa.String(length=200), nullable=True),
        sa.Column("published_body", sa.Text(), nullable=True),
        _when("published_at"),
        sa.Column("published_by_id", sa.BigInteger(), nullable=True),
        _when("pushed_at"),
        sa.Column("updated_by_id", sa.BigInteger(), nullable=True),
        _when("updated_at", False),
        sa.CheckConstraint(
            "(published_at IS NULL) = (published_title IS NULL)",
            name=op.f("ck_content_versions_published_is_whole"),
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["content_items.id"], name=op.f("fk_content_versions_item_id_content_items")
        ),
        sa.ForeignKeyConstraint(
            ["published_by_id"], ["users.id"], name=op.f("fk_content_versions_published_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"], ["users.id"], name=op.f("fk_content_versions_updated_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_versions")),
        sa.UniqueConstraint("item_id", "language", name="uq_content_versions_item_language"),
    )


def downgrade():
    op.drop_table("content_versions")
    op.drop_index("ix_content_items_kind_position", table_name="content_items")
    op.drop_table("content_items")
