"""tournament scores after commit: one processed marker per (tournament, claim, kind)

Revision ID: 0017
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0017"
# Chained after the latest revision of this branch; re-chain after 0015/0016 when merging.
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "tournament_score_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tournament_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("provider_transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("by_transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('bet', 'win', 'reversal')", name=op.f("ck_tournament_score_events_kind")
        ),
        sa.ForeignKeyConstraint(
            ["tournament_id"],
            ["tournaments.id"],
            name=op.f("fk_tournament_score_events_tournament_id_tournaments"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_tournament_score_events_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tournament_score_events")),
        sa.UniqueConstraint(
            "tournament_id", "provider_transaction_id", "kind", name="uq_tournament_score_event"
        ),
    )


def downgrade():
    op.drop_table("tournament_score_events")
