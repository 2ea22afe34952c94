"""report_days.cutoff: a day folded up to a point in time (today's incremental fold)

Revision ID: 0032
Revises: 0031
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("report_days") as batch_op:
        batch_op.add_column(
            sa.Column("cutoff", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table("report_days") as batch_op:
        batch_op.drop_column("cutoff")
