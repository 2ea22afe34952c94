"""report rollups per provider (report_daily_providers), rolled-day marks (report_days)

Revision ID: 0025
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0025"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_daily_providers",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("provider_id", sa.BigInteger(), nullable=False),
        sa.Column("stakes", sa.BigInteger(), nullable=False),
        sa.Column("wins", sa.BigInteger(), nullable=False),
        sa.Column("ggr", sa.BigInteger(), nullable=False),
        sa.Column("bonus_stakes", sa.BigInteger(), nullable=False),
        sa.Column("bets_count", sa.Integer(), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("unique_players", sa.Integer(), nullable=False),
        sa.Column("rolled_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "currency", "provider_id", name=op.f("pk_report_daily_providers")
        ),
    )
    op.create_table(
        "report_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rolled_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_report_days")),
    )
    # Days rolled before the marks existed: their per-provider rows are missing, so they stay
    # unmarked (read live) until the next `flask jackpotx reports rollup` over them.


def downgrade():
    op.drop_table("report_days")
    op.drop_table("report_daily_providers")
