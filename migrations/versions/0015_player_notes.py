"""staff notes on player accounts

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "player_notes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_player_notes_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_player_notes_author_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_player_notes")),
    )
    op.create_index(
        "ix_player_notes_user_created", "player_notes", ["user_id", "created_at"], unique=False
    )


def downgrade():
    op.drop_index("ix_player_notes_user_created", table_name="player_notes")
    op.drop_table("player_notes")
