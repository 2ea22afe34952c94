"""GDPR data archives built by a job and downloadable once: data_export_archives

Revision ID: 0033
Revises: 0027
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0033"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "data_export_archives",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("storage_name", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ready_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("downloaded_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'ready', 'downloaded', 'failed', 'expired')",
            name=op.f("ck_data_export_archives_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_data_export_archives_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_export_archives")),
        sa.UniqueConstraint("public_id", name=op.f("uq_data_export_archives_public_id")),
    )
    op.create_index(
        "ix_data_export_archives_user_created",
        "data_export_archives",
        ["user_id", "created_at"],
        unique=False,
    )


def downgrade():
    op.drop_index("ix_data_export_archives_user_created", table_name="data_export_archives")
    op.drop_table("data_export_archives")
