"""report rollups per provider (report_daily_providers), rolled-day marks (report_days),
RTP deviation flags (rtp_flags)

Revision ID: 0025
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0025"
down_revision = "0021"
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
    op.create_table(
        "rtp_flags",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("game_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("declared_rtp", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("measured_rtp", sa.Numeric(precision=9, scale=2), nullable=False),
        sa.Column("stakes", sa.BigInteger(), nullable=False),
        sa.Column("wins", sa.BigInteger(), nullable=False),
        sa.Column("bets_count", sa.Integer(), nullable=False),
        sa.Column("window_from", sa.Date(), nullable=False),
        sa.Column("window_to", sa.Date(), nullable=False),
        sa.Column("raised_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.BigInteger(), nullable=True),
        sa.Column("acknowledged_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("cleared_at", app.core.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'cleared')", name=op.f("ck_rtp_flags_status")
        ),
        sa.CheckConstraint(
            "stakes > 0 AND bets_count > 0", name=op.f("ck_rtp_flags_significant")
        ),
        sa.ForeignKeyConstraint(["game_id"], ["games.id"], name=op.f("fk_rtp_flags_game_id_games")),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"], ["users.id"], name=op.f("fk_rtp_flags_acknowledged_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rtp_flags")),
    )
    op.create_index(
        "uq_rtp_flags_live",
        "rtp_flags",
        ["game_id", "currency"],
        unique=True,
        postgresql_where=sa.text("status IN ('open', 'acknowledged')"),
        sqlite_where=sa.text("status IN ('open', 'acknowledged')"),
    )
    op.create_index("ix_rtp_flags_status_raised", "rtp_flags", ["status", "raised_at"])
    # Days rolled before the marks existed have no per-provider rows: they stay unmarked (read
    # live) until the periodic job's catch-up or a `flask jackpotx reports rollup` rolls them.


def downgrade():
    op.drop_index("ix_rtp_flags_status_raised", table_name="rtp_flags")
    op.drop_index("uq_rtp_flags_live", table_name="rtp_flags")
    op.drop_table("rtp_flags")
    op.drop_table("report_days")
    op.drop_table("report_daily_providers")
