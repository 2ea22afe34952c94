"""game providers: the SoftSwiss-style protocol

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD = "protocol IN ('native', 'pragmatic', 'hub88')"
NEW = "protocol IN ('native', 'pragmatic', 'hub88', 'softswiss')"


def upgrade():
    with op.batch_alter_table("game_providers") as batch_op:
        batch_op.drop_constraint(op.f("ck_game_providers_protocol"), type_="check")
        batch_op.create_check_constraint(op.f("ck_game_providers_protocol"), sa.text(NEW))


def downgrade():
    with op.batch_alter_table("game_providers") as batch_op:
        batch_op.drop_constraint(op.f("ck_game_providers_protocol"), type_="check")
        batch_op.create_check_constraint(op.f("ck_game_providers_protocol"), sa.text(OLD))
