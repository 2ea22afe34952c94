"""ClickHouse sink: analytics_sink_state (one durable high-water mark per exported stream)

Revision ID: 0024
Revises: 0028
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0024"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "analytics_sink_state",
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("last_ts", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("exported_rows", sa.BigInteger(), nullable=False),
        sa.Column("batches", sa.BigInteger(), nullable=False),
        sa.Column("last_batch_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_error_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_analytics_sink_state")),
    )


def downgrade():
    op.drop_table("analytics_sink_state")
