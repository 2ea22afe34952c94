"""free spin grants issued through an aggregator's API: remote status, attempts, error

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

import app.core.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

#: SQLite batch mode reflects the table; following its foreign keys would reflect tables with
#: expression indexes SQLAlchemy cannot reflect (a warning, an error under pytest).
_REFLECT = {"resolve_fks": False}
REMOTE = "remote_status IS NULL OR remote_status IN ('pending', 'issued', 'failed', 'cancelled')"


def upgrade():
    with op.batch_alter_table("free_spin_grants", reflect_kwargs=_REFLECT) as batch_op:
        batch_op.add_column(sa.Column("remote_status", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("issue_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("remote_error", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("issued_at", app.core.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_check_constraint(op.f("ck_free_spin_grants_remote_status"), sa.text(REMOTE))
        batch_op.create_index(
            "ix_free_spin_grants_remote_status", ["remote_status"], unique=False
        )
        batch_op.create_index(
            "ix_free_spin_grants_provider_ref", ["provider_id", "provider_ref"], unique=False
        )


def downgrade():
    with op.batch_alter_table("free_spin_grants", reflect_kwargs=_REFLECT) as batch_op:
        batch_op.drop_index("ix_free_spin_grants_provider_ref")
        batch_op.drop_index("ix_free_spin_grants_remote_status")
        batch_op.drop_constraint(op.f("ck_free_spin_grants_remote_status"), type_="check")
        batch_op.drop_column("issued_at")
        batch_op.drop_column("remote_error")
        batch_op.drop_column("issue_attempts")
        batch_op.drop_column("remote_status")
