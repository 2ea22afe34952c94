"""daily report rollups: report_daily (day x currency), report_daily_games (day x game x currency)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "report_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("stakes", sa.BigInteger(), nullable=False),
        sa.Column("wins", sa.BigInteger(), nullable=False),
        sa.Column("ggr", sa.BigInteger(), nullable=False),
        sa.Column("bets_count", sa.Integer(), nullable=False),
        sa.Column("unique_players", sa.Integer(), nullable=False),
        sa.Column("bonus_cost", sa.BigInteger(), nullable=False),
        sa.Column("payment_fees", sa.BigInteger(), nullable=False),
        sa.Column("deposits", sa.BigInteger(), nullable=False),
        sa.Column("withdrawals", sa.BigInteger(), nullable=False),
        sa.Column("depositors", sa.Integer(), nullable=False),
        sa.Column("first_depositors", sa.Integer(), nullable=False),
        sa.Column("rolled_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", "currency", name=op.f("pk_report_daily")),
    )
    op.create_table(
        "report_daily_games",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("game_id", sa.BigInteger(), nullable=True),
        sa.Column("stakes", sa.BigInteger(), nullable=False),
        sa.Column("wins", sa.BigInteger(), nullable=False),
        sa.Column("ggr", sa.BigInteger(), nullable=False),
        sa.Column("bets_count", sa.Integer(), nullable=False),
        sa.Column("unique_players", sa.Integer(), nullable=False),
        sa.Column("rolled_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_daily_games")),
        sa.UniqueConstraint("day", "currency", "game_id", name="uq_report_daily_games"),
    )
    op.create_index(
        "ix_report_daily_games_game_day", "report_daily_games", ["game_id", "day"], unique=False
    )


def downgrade():
    op.drop_index("ix_report_daily_games_game_day", table_name="report_daily_games")
    op.drop_table("report_daily_games")
    op.drop_table("report_daily")
