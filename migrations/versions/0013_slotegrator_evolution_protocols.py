"""game providers: the Slotegrator-style (and the nonces it signs with) and Evolution-style
protocols

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OLD = "protocol IN ('native', 'pragmatic', 'hub88', 'softswiss')"
NEW = "protocol IN ('native', 'pragmatic', 'hub88', 'softswiss', 'slotegrator', 'evolution')"


def upgrade():
    with op.batch_alter_table("game_providers") as batch_op:
        batch_op.drop_constraint(op.f("ck_game_providers_protocol"), type_="check")
        batch_op.create_check_constraint(op.f("ck_game_providers_protocol"), sa.text(NEW))
    op.create_table(
        "provider_nonces",
        sa.Column("provider_id", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=False),
        sa.Column("seen_at", app.core.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["game_providers.id"],
            name=op.f("fk_provider_nonces_provider_id_game_providers"),
        ),
        sa.PrimaryKeyConstraint("provider_id", "nonce", name=op.f("pk_provider_nonces")),
    )
    op.create_index(
        op.f("ix_provider_nonces_seen_at"), "provider_nonces", ["seen_at"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_provider_nonces_seen_at"), table_name="provider_nonces")
    op.drop_table("provider_nonces")
    with op.batch_alter_table("game_providers") as batch_op:
        batch_op.drop_constraint(op.f("ck_game_providers_protocol"), type_="check")
        batch_op.create_check_constraint(op.f("ck_game_providers_protocol"), sa.text(OLD))
