"""report_exports: queued CSV exports (files under EXPORT_DIR, expiring)

Revision ID: 0023
Revises: 0024
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0023"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_exports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("requested_by_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("rows_total", sa.Integer(), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("storage_name", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'ready', 'failed', 'expired')",
            name=op.f("ck_report_exports_status"),
        ),
        sa.CheckConstraint("rows_done >= 0", name=op.f("ck_report_exports_rows_done")),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_report_exports_requested_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_exports")),
        sa.UniqueConstraint("public_id", name=op.f("uq_report_exports_public_id")),
    )
    op.create_index(
        "ix_report_exports_requester_created",
        "report_exports",
        ["requested_by_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_report_exports_status_expires", "report_exports", ["status", "expires_at"], unique=False
    )


def downgrade():
    op.drop_index("ix_report_exports_status_expires", table_name="report_exports")
    op.drop_index("ix_report_exports_requester_created", table_name="report_exports")
    op.drop_table("report_exports")
