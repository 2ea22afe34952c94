"""game providers: key-pair protocols (Hub88) and the aggregator's API URL

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD = "protocol IN ('native', 'pragmatic')"
NEW = "protocol IN ('native', 'pragmatic', 'hub88')"


def upgrade():
    with op.batch_alter_table("game_providers") as batch_op:
        batch_op.add_column(sa.Column("peer_public_key", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("private_key_enc", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("api_url", sa.String(length=500), nullable=True))
        batch_op.drop_constraint(op.f("ck_game_providers_protocol"), type_="check")
        batch_op.create_check_constraint(op.f("ck_game_providers_protocol"), sa.text(NEW))


def downgrade():
    with op.batch_alter_table("game_providers") as batch_op:
        batch_op.drop_constraint(op.f("ck_game_providers_protocol"), type_="check")
        batch_op.create_check_constraint(op.f("ck_game_providers_protocol"), sa.text(OLD))
        batch_op.drop_column("api_url")
        batch_op.drop_column("private_key_enc")
        batch_op.drop_column("peer_public_key")
